"""Crashes at process level: a real `newsletter send` killed mid-send, then run again.

The fake provider runs as a process of its own and records every message it accepts. The sender
is killed with SIGKILL (nothing runs: rows it had with the provider are left in flight) or
stopped with SIGTERM (it stops claiming, records the batches in flight and exits non-zero with
a summary) at seeded random points of progress, then run again until it exits 0. What a user
would check afterwards:

- resend (idempotent: a repeated batch carries its original Idempotency-Key): every active
  subscriber received the edition exactly once, and nothing is left unknown;
- postmark and mailgun (no idempotency): the rerun asks the provider's search what the dead
  sender left with it, so again everyone received it exactly once and nothing is unknown; with
  the search failing, those rows stay unknown (nobody twice) until ``send --reconcile``;
- after SIGTERM, with either provider: nothing is unknown, so everyone gets it exactly once.
"""

from __future__ import annotations

import random
import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.process_helpers import (
    WEEK,
    FakeProviderProcess,
    count_lines,
    ledger_rows,
    read_records,
    recorded_ids,
    run_newsletter,
    seed_subscribers,
    send_status,
    sender_env,
    start_send,
    stop_process,
    wait_for_records,
)

ACTIVE = 2000
INACTIVE = 25       # unsubscribed: must never be sent to
LATENCY_MS = 20     # each batch spends this long with the provider: kills land mid-request
BATCH = 50
MAX_RUNS = 8        # a bounded number of reruns

pytestmark = pytest.mark.slow


def _backend(name: str):
    marks = [pytest.mark.postgres] if name == "postgresql" else []
    return pytest.param(name, marks=marks, id=name)


@pytest.fixture
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'newsletter.db'}"
    return request.getfixturevalue("postgres_url")


class Trial:
    """One seeded send of ACTIVE recipients, interrupted ``kills`` times, then run to the end."""

    def __init__(self, project: Path, tmp_path: Path, database_url: str, provider: str,
                 seed: int, *, fake_args: list[str] = (), **settings):
        self.project = project
        self.logs = tmp_path / "logs"
        self.database_url = database_url
        self.provider = provider
        self.rng = random.Random(seed)
        self.active, self.inactive = seed_subscribers(database_url, ACTIVE, inactive=INACTIVE)
        self.record = tmp_path / "provider.jsonl"
        self.fake_args = list(fake_args)
        self.settings = {"mailgun_domain": "mg.example.com", **settings}
        # (run, ledger rows right after it, what the provider had accepted by then)
        self.interrupted: list[tuple] = []

    def run(self, sig: int, kills: int) -> list:
        """Interrupt the send ``kills`` times with ``sig``, then let it finish. Returns the
        runs, the last one finished."""
        runs = []
        with FakeProviderProcess(self.record, latency_ms=LATENCY_MS,
                                 extra=self.fake_args) as fake:
            self.env = sender_env(self.provider, fake.base_url, self.database_url,
                                  batch_size=BATCH, concurrency=4, retry_delay=0.05,
                                  **self.settings)
            for _ in range(MAX_RUNS):
                run = start_send(self.env, self.project, self.logs)
                try:
                    if len(self.interrupted) < kills:
                        self._interrupt(run, sig)
                    run.wait()
                finally:
                    stop_process(run.proc)
                runs.append(run)
                if run.returncode == 0:
                    break
                assert run.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 1), \
                    run.output
                self.interrupted.append((run, ledger_rows(self.database_url),
                                         recorded_ids(read_records(self.record))))
            else:
                pytest.fail(f"the send did not finish in {MAX_RUNS} runs: {runs[-1].output}")
            self.status = run_newsletter(["status", "--week", WEEK], self.env, self.project,
                                         self.logs)
        assert len(self.interrupted) == kills, "every interruption landed mid-send"
        return runs

    def _interrupt(self, run, sig: int) -> None:
        """Signal ``run`` once the provider has accepted a seeded random number of further
        messages, and a random fraction of a request's latency later."""
        done = count_lines(self.record)
        target = done + self.rng.randint(1, (ACTIVE - done) * 2 // 3)
        delay = self.rng.uniform(0, 1.5 * LATENCY_MS / 1000)
        if wait_for_records(run, self.record, target):
            time.sleep(delay)  # lands at any point of the requests then in flight
            run.signal(sig)

    # -- what a user checks afterwards ---------------------------------------------------------

    def outcome(self) -> tuple[Counter, dict[int, str]]:
        received = recorded_ids(read_records(self.record))
        rows = ledger_rows(self.database_url)
        assert set(rows) == self.active, "the send's recipients are the active subscribers"
        assert not set(received) & self.inactive, "nobody unsubscribed received it"
        assert not [i for i, n in received.items() if n > 1], "nobody received it twice"
        assert send_status(self.database_url) == "done"
        return received, rows


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _counts(status_output: str) -> dict[str, int]:
    return {state: int(n) for n, state in re.findall(r"(\d+) (sent|failed|unknown|skipped|"
                                                     r"pending|in_flight)\b", status_output)}


# Two seeded trials on SQLite, one on PostgreSQL (where claiming takes row locks instead).
# Each costs a few processes' start-up; random kills at many more points, under random faults,
# are tried in-process by tests/test_fault_injection.py.
KILL_TRIALS = [pytest.param(backend, seed, marks=_backend(backend).marks, id=f"{backend}-{seed}")
               for backend, seed in (("sqlite", 1), ("sqlite", 2), ("postgresql", 4))]


@pytest.mark.parametrize("db_url,seed", KILL_TRIALS, indirect=["db_url"])
def test_sigkill_with_an_idempotent_provider_delivers_to_everyone_exactly_once(
        project, tmp_path, db_url, seed):
    trial = Trial(project, tmp_path, db_url, "resend", seed)
    trial.run(signal.SIGKILL, kills=2)

    left_in_flight = [sid for _, rows, _ in trial.interrupted for sid, s in rows.items()
                      if s == "in_flight"]
    assert left_in_flight, "the kills left batches with the provider"
    received, rows = trial.outcome()
    assert set(received) == trial.active and set(received.values()) == {1}
    assert set(rows.values()) == {"sent"}
    assert _counts(trial.status.stdout) == {"sent": ACTIVE, "failed": 0, "unknown": 0,
                                            "skipped": 0, "pending": 0, "in_flight": 0}
    assert f"{WEEK}  done  {ACTIVE} recipient(s)" in trial.status.stdout


SEARCH_TRIALS = [pytest.param(backend, provider, seed, marks=_backend(backend).marks,
                              id=f"{provider}-{backend}-{seed}")
                 for backend, provider, seed in (("sqlite", "postmark", 1),
                                                 ("postgresql", "postmark", 4),
                                                 ("sqlite", "mailgun", 2),
                                                 ("postgresql", "mailgun", 5))]


@pytest.mark.parametrize("db_url,provider,seed", SEARCH_TRIALS, indirect=["db_url"])
def test_sigkill_without_idempotency_is_exactly_once_by_asking_the_provider(
        project, tmp_path, db_url, provider, seed):
    """What a dead sender left with the provider is looked up in its search on the rerun:
    found, it is sent; not found once settled, it goes out again; nobody gets it twice."""
    trial = Trial(project, tmp_path, db_url, provider, seed, reconcile_settle=0.5)
    trial.run(signal.SIGKILL, kills=2)

    left_in_flight = {sid for _, rows, _ in trial.interrupted for sid, s in rows.items()
                      if s == "in_flight"}
    assert left_in_flight, "the kills left batches with the provider"
    received, rows = trial.outcome()
    assert set(received) == trial.active and set(received.values()) == {1}
    assert set(rows.values()) == {"sent"}, "nothing is left unknown"
    assert _counts(trial.status.stdout)["unknown"] == 0
    assert "reconciled" in trial.status.stdout


def test_sigkill_with_the_search_failing_leaves_unknowns_and_reconcile_resolves_them(
        project, tmp_path):
    """The provider's search answers 500 throughout the reruns: the rows a dead sender left
    stay unknown and are not resent; once it is back, `send --reconcile` resolves them, and
    the next run sends what the provider never took."""
    database_url = f"sqlite:///{tmp_path / 'newsletter.db'}"
    port = ["--port", str(_free_port())]  # the provider comes back where the send began
    trial = Trial(project, tmp_path, database_url, "postmark", 3, reconcile_settle=0.5,
                  fake_args=["--search-p500", "1", *port])
    trial.run(signal.SIGKILL, kills=1)
    received, rows = trial.outcome()
    unknown = {sid for sid, s in rows.items() if s == "unknown"}
    assert unknown, "the search failed: the rows left with the provider stay unknown"
    assert set(received) | unknown == trial.active

    with FakeProviderProcess(trial.record, latency_ms=LATENCY_MS, extra=port) as fake:
        env = sender_env("postmark", fake.base_url, database_url, reconcile_settle=0.5)
        asked = run_newsletter(["send", "--week", WEEK, "--reconcile"], env, project,
                               trial.logs)
        assert asked.returncode == 0, asked.output
        assert "0 still unknown" in asked.stdout
        final = run_newsletter(["send", "--week", WEEK], env, project, trial.logs)
        assert final.returncode == 0, final.output
    received, rows = trial.outcome()
    assert set(received) == trial.active and set(received.values()) == {1}
    assert set(rows.values()) == {"sent"}


@pytest.mark.parametrize("provider", ["postmark", "resend"])
@pytest.mark.parametrize("db_url", [_backend("sqlite"), _backend("postgresql")], indirect=True)
def test_sigterm_stops_cleanly_and_a_rerun_delivers_to_everyone_exactly_once(
        project, tmp_path, db_url, provider):
    trial = Trial(project, tmp_path, db_url, provider, seed=47)
    trial.run(signal.SIGTERM, kills=2 if db_url.startswith("sqlite") else 1)

    for run, rows, received_then in trial.interrupted:
        assert "interrupted by SIGTERM" in run.stderr
        assert "run the same command to resume" in run.stderr
        summary = _counts(run.stdout.splitlines()[0])
        assert summary["in_flight"] == 0 and summary["unknown"] == 0, run.stdout
        assert summary["sent"] == Counter(rows.values())["sent"] > 0
        assert summary["pending"] == Counter(rows.values())["pending"] > 0
        assert not set(rows.values()) - {"sent", "pending"}, \
            "a clean stop leaves nothing in flight or unknown"
        assert set(received_then) == {sid for sid, s in rows.items() if s == "sent"}, \
            "after a clean stop the ledger knows exactly who received it"
    received, rows = trial.outcome()
    assert set(received) == trial.active and set(received.values()) == {1}
    assert set(rows.values()) == {"sent"}
    assert _counts(trial.status.stdout)["sent"] == ACTIVE


# -- answers lost again and again ---------------------------------------------------------------

def test_an_idempotent_provider_whose_answers_keep_getting_lost_is_not_asked_forever(
        project, tmp_path):
    """What a crash leaves, a provider that drops every connection unanswered makes on each
    request: rows whose outcome is unknown. With an idempotency key the repeat is safe, but it
    must still be bounded by max_attempts (and wait retry_delay), not loop at full speed."""
    import threading

    from newsletter.config import load_config
    from newsletter.delivery.send import SendOptions, send_edition
    from newsletter.devtools.fake_provider import FakeProvider, Faults
    from newsletter.providers._http import RetryPolicy
    from tests.sending import send_deps

    database_url = f"sqlite:///{tmp_path / 'newsletter.db'}"
    seed_subscribers(database_url, 100)
    with FakeProvider(faults=Faults(p_drop_before=1.0)) as fake:
        environ = {k: v for k, v in sender_env("resend", fake.base_url, database_url,
                                               batch_size=50, max_attempts=3,
                                               retry_delay=0.01).items()
                   if k.startswith("NEWSLETTER_")}
        config = load_config(project / "newsletter.toml", environ=environ)
        runs = []
        for _ in range(2):  # the second run finds the unknowns final: it sends nothing
            stop = threading.Event()
            outcome = {}

            def send(stop=stop, outcome=outcome) -> None:
                client = {"retry": RetryPolicy(attempts=1, base_delay=0.001, max_delay=0.01)}
                outcome["run"] = send_edition(config, WEEK, SendOptions(interactive=False),
                                              stop_event=stop, deps=send_deps(client=client))

            thread = threading.Thread(target=send, daemon=True)
            thread.start()
            thread.join(30)  # only a guard against a hang: it needs well under a second
            ended_by_itself = not thread.is_alive()
            stop.set()
            thread.join()
            runs.append((ended_by_itself, fake.requests, outcome.get("run")))

    assert all(ended for ended, _, _ in runs), f"still resending: {runs}"
    assert runs[0][1] <= 2 * 3, "each batch is sent at most max_attempts times"
    assert runs[1][1] == runs[0][1], "a later run does not start the repeats over"
    assert runs[0][2].counts == {"unknown": 100}
