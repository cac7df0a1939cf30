"""`newsletter worker` as a process: a real schedule, the fake provider, signals, restarts.

The test hook is the schedule itself: six fields put seconds first, so the worker is given a
schedule due a few seconds from now (``S M H * * *`` in the configured time zone) through
``NEWSLETTER_SCHEDULE``. A worker that takes longer than that to start still sends: the fire
time is then caught up on start, or is the scheduler's first run. Each test takes a few
seconds of real time; they wait on the worker's log lines and the fake's records, not on
sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.devtools.fake_provider import FakeProvider
from newsletter.worker.schedule import edition_week

SAMPLE_WEEK = "2026-W47"
TZ = "Europe/Berlin"
AHEAD = 6  # seconds between starting a worker and its scheduled run
pytestmark = pytest.mark.slow
# Runs the CLI with the worker command registered, whether or not cli.py does it yet.
BOOT = ("import sys; from newsletter.cli import cli; from newsletter.cli.worker import worker; "
        "'worker' in cli.commands or cli.add_command(worker); "
        "cli.main(args=sys.argv[1:], prog_name='newsletter')")


class WorkerProcess:
    def __init__(self, cwd, env):
        self.proc = subprocess.Popen([sys.executable, "-c", BOOT, "worker"], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, encoding="utf-8")
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        """The first line (seen so far or coming) matching ``pattern``."""
        for line in self.lines:
            if re.search(pattern, line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {timeout}s; output:\n"
                                     + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"the worker exited ({self.proc.wait()}) before a line "
                                     f"matching {pattern!r}; output:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> int:
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            while (line := self._queue.get()) is not None:
                self.lines.append(line)
            raise AssertionError(f"the worker did not stop within {timeout}s of {sig.name}; "
                                 "output:\n" + "\n".join(self.lines)) from None
        self.wait_for("worker stopped", timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def fake():
    with FakeProvider() as server:
        yield server


@pytest.fixture
def workers():
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.kill()


def schedule_soon(seconds: int = AHEAD) -> tuple[str, datetime]:
    """A 6-field schedule (seconds first) due ``seconds`` from now, and that time."""
    due = (datetime.now(UTC) + timedelta(seconds=seconds)).astimezone(ZoneInfo(TZ))
    due = due.replace(microsecond=0)
    return f"{due.second} {due.minute} {due.hour} * * *", due


@pytest.fixture
def setup(project, monkeypatch):
    """Point the worker at a database and the fake provider, import the sample subscribers."""

    def prepare(database_url: str, provider: FakeProvider, **extra: str) -> None:
        env = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_PROVIDER": "postmark",
               "NEWSLETTER_PROVIDER_BASE_URL": provider.base_url,
               "NEWSLETTER_PROVIDER_API_KEY": "pm-test-token", "NEWSLETTER_SECRET_KEY": "s" * 32,
               "NEWSLETTER_TIMEZONE": TZ, **extra}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        result = CliRunner().invoke(cli, ["subscribers", "import", "subscribers/sample.csv"])
        assert result.exit_code == 0, result.output

    return prepare


def add_week(project, week: str) -> None:
    if week != SAMPLE_WEEK:
        shutil.copytree(project / "items" / SAMPLE_WEEK, project / "items" / week)


def start(project, workers, schedule: str) -> WorkerProcess:
    env = dict(os.environ, NEWSLETTER_SCHEDULE=schedule, PYTHONUNBUFFERED="1")
    worker = WorkerProcess(project, env)
    workers.append(worker)
    return worker


ACTIVE = 6  # subscribers in subscribers/sample.csv, all active once imported


def test_the_worker_sends_once_on_schedule_and_not_again_after_a_restart(
        project, fake, setup, workers, tmp_path):
    setup(f"sqlite:///{tmp_path / 'worker.db'}", fake)
    schedule, due = schedule_soon()
    week = edition_week(due, TZ)
    add_week(project, week)
    first = start(project, workers, schedule)
    # Listed as the next run; or, on a machine slow enough that the worker came up after
    # the time passed, taken up as a run within misfire_grace: the same send either way.
    line = first.wait_for(r"next runs: |was not sent; within misfire_grace")
    first.wait_for(r"next runs: ")
    assert f"{due:%Y-%m-%d %H:%M:%S %Z}" in line
    assert "pm-test-token" not in "\n".join(first.lines) and "s" * 32 not in line
    first.wait_for(rf"{week}: sending \(scheduled ")
    sent = first.wait_for(rf"{week}: sent: ", timeout=30)
    assert f"{ACTIVE} sent, 0 failed" in sent
    assert first.proc.poll() is None, "the worker keeps running after the send"
    assert sorted(fake.recipients()) == sorted(set(fake.recipients()))
    assert len(fake.recipients()) == ACTIVE
    assert first.stop(signal.SIGTERM) == 0

    second = start(project, workers, schedule)
    second.wait_for(rf"{week}: last run, due .* already sent; nothing to catch up")
    line = second.wait_for(r"next runs: ")
    assert f"{due + timedelta(days=1):%Y-%m-%d %H:%M:%S}" in line, "the next run is tomorrow's"
    second.wait_for("worker running")
    assert second.stop(signal.SIGINT) == 0
    assert len(fake.recipients()) == ACTIVE, "nothing sent again"
    assert not any("sending" in line for line in second.lines)


def test_a_missing_edition_is_logged_and_the_worker_stays_up(
        project, fake, setup, workers, tmp_path):
    setup(f"sqlite:///{tmp_path / 'worker.db'}", fake)
    schedule, due = schedule_soon()
    week = edition_week(due, TZ)
    shutil.rmtree(project / "items" / week, ignore_errors=True)
    worker = start(project, workers, schedule)
    line = worker.wait_for(rf"{week}: not sent: ", timeout=30)
    assert str(project / "items" / week) in line and "the worker carries on" in line
    assert worker.proc.poll() is None, "the worker is still alive"
    assert fake.recipients() == []
    assert worker.stop() == 0


@pytest.mark.postgres
def test_two_workers_on_one_postgresql_database_send_each_message_once(
        project, fake, setup, workers, postgres_url):
    setup(postgres_url, fake)
    schedule, due = schedule_soon(AHEAD + 2)  # two interpreters to start
    week = edition_week(due, TZ)
    add_week(project, week)
    pair = [start(project, workers, schedule) for _ in range(2)]
    done = r"sent: |already sent|skipped: "
    for worker in pair:
        worker.wait_for(done, timeout=40)
    assert sorted(fake.recipients()) == sorted(set(fake.recipients()))
    assert len(fake.recipients()) == ACTIVE
    for worker in pair:
        assert worker.stop() == 0
        assert not any(": not sent: " in line for line in worker.lines)
    # The second to open the send either joined it (SKIP LOCKED shares the batches) or found
    # it done; both sent the week through the one ledger row.
    assert sum(": sent: " in line for w in pair for line in w.lines) >= 1


@pytest.fixture
def slow_fake():
    with FakeProvider(latency=0.7) as server:
        yield server


def test_a_stop_during_a_send_is_clean_and_the_restart_finishes_it(
        project, slow_fake, setup, workers, tmp_path):
    # One message per request, 0.7 s each: the send takes about 4 s.
    setup(f"sqlite:///{tmp_path / 'worker.db'}", slow_fake, NEWSLETTER_BATCH_SIZE="1",
          NEWSLETTER_CONCURRENCY="1")
    schedule, due = schedule_soon()
    week = edition_week(due, TZ)
    add_week(project, week)
    accepted = threading.Event()
    slow_fake.on_accept = lambda records: accepted.set()
    first = start(project, workers, schedule)
    first.wait_for(rf"{week}: sending")
    assert accepted.wait(30), "a message out, the rest to come"
    assert first.stop(signal.SIGTERM, timeout=30) == 0
    # The worker asks the send to stop (send_edition's stop_event): the batch in flight is
    # recorded, the rest stays pending, and the process exits 0.
    stopped = first.wait_for(rf"{week}: stopped: ", timeout=1)
    assert " pending" in stopped and "resumes on the next start" in stopped
    assert len(slow_fake.recipients()) < ACTIVE

    second = start(project, workers, schedule)
    second.wait_for(rf"{week}: the send due .* is unfinished; resuming it now")
    second.wait_for(rf"{week}: sent: {ACTIVE} sent, 0 failed", timeout=30)
    assert second.stop() == 0
    assert sorted(slow_fake.recipients()) == sorted(set(slow_fake.recipients()))
    assert len(slow_fake.recipients()) == ACTIVE
