"""Several `newsletter send` processes at once.

On PostgreSQL three of them share the work (claiming takes row locks with SKIP LOCKED): all
exit 0 and together reach every active subscriber exactly once; each one's summary says how
many it sent, and none sat idle.
On SQLite a second sender is refused at once while the first lives, and the first carries on
undisturbed.
"""

from __future__ import annotations

import re
import threading

import pytest

from tests.process_helpers import (
    WEEK,
    FakeProviderProcess,
    ledger_rows,
    read_records,
    recorded_ids,
    run_newsletter,
    seed_subscribers,
    sender_env,
    start_send,
    stop_process,
    wait_for_records,
)

ACTIVE = 3000
# Each sender is held to 1,000 messages/s, so none can finish the 3,000 alone before the
# others have started: the three really send at the same time.
PACING = {"batch_size": 50, "concurrency": 2, "rate_limit": 1000, "retry_delay": 0.05}


@pytest.mark.slow
def test_three_senders_on_postgresql_reach_everyone_exactly_once(project, tmp_path,
                                                                 postgres_url):
    active, inactive = seed_subscribers(postgres_url, ACTIVE, inactive=20)
    logs = tmp_path / "logs"
    # One provider endpoint: a send is bound to the endpoint it started with.
    with FakeProviderProcess(tmp_path / "sent.jsonl", latency_ms=20) as fake:
        env = sender_env("postmark", fake.base_url, postgres_url, **PACING)
        runs = [start_send(env, project, logs) for _ in range(3)]
        try:
            for run in runs:
                run.wait()
        finally:
            for run in runs:
                stop_process(run.proc)
        status = run_newsletter(["status", "--week", WEEK], env, project, logs)

    for run in runs:
        assert run.returncode == 0, run.output
    shares = [int(re.search(r"this run: sent (\d+)", run.stdout)[1]) for run in runs]
    assert all(shares) and sum(shares) == ACTIVE, f"every sender did part of the work: {shares}"
    got = recorded_ids(read_records(tmp_path / "sent.jsonl"))
    assert set(got) == active and set(got.values()) == {1}, "everyone exactly once"
    assert set(ledger_rows(postgres_url).values()) == {"sent"}
    assert f"{WEEK}  done  {ACTIVE} recipient(s)" in status.stdout
    assert f"{ACTIVE} sent, 0 failed, 0 unknown, 0 skipped, 0 pending, 0 in_flight" \
        in status.stdout


@pytest.mark.slow
def test_a_second_sender_on_sqlite_is_refused_while_the_first_runs(project, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'newsletter.db'}"
    active, _ = seed_subscribers(database_url, ACTIVE)
    logs = tmp_path / "logs"
    record = tmp_path / "sent.jsonl"
    with FakeProviderProcess(record, latency_ms=20) as fake:
        env = sender_env("postmark", fake.base_url, database_url, **PACING)
        first = start_send(env, project, logs)
        try:
            assert wait_for_records(first, record, 1), first.wait().output
            second = start_send(env, project, logs).wait()
            first.wait()
        finally:
            stop_process(first.proc)

    assert second.returncode == 1
    assert re.search(rf"error: a send of {WEEK} is already in progress \(pid "
                     rf"{first.proc.pid} on .*\); wait for it, or stop it first", second.stderr)
    assert "sent," not in second.stdout, "the refused sender reports no counts of its own"
    assert first.returncode == 0, first.output
    got = recorded_ids(read_records(record))
    assert set(got) == active and set(got.values()) == {1}
    assert set(ledger_rows(database_url).values()) == {"sent"}


@pytest.mark.postgres
def test_two_senders_opening_a_new_send_at_the_same_moment_share_it(postgres_url):
    """Both workers of a schedule start at 08:00 on a week not sent yet: both must get the one
    send, not a unique-constraint crash for the slower one (which, with a large list, is the
    one whose snapshot insert waited on the other's)."""
    from newsletter.delivery import ledger
    from newsletter.store.db import connect

    seed_subscribers(postgres_url, ACTIVE)
    engine = connect(postgres_url)
    barrier = threading.Barrier(2)
    opened, errors = [], []

    def open_send() -> None:
        barrier.wait()
        try:
            opened.append(ledger.open_send(engine, WEEK, "c" * 64, "Subject", "postmark"))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len({send.id for send, _ in opened}) == 1
    assert sorted(created for _, created in opened) == [False, True]
    assert {send.total for send, _ in opened} == {ACTIVE}
