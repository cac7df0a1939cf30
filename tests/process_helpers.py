"""Helpers for process-level tests and benchmarks: the fake provider as a process of its own,
`newsletter send` as a subprocess, quick seeding and direct reads of the ledger.

Every process is started in a session of its own (``start_new_session=True``) so that a
signal reaches the one process meant, and is always stopped by its id.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

WEEK = "2026-W47"
SECRET = "s" * 32
API_KEY = "fake-provider-key"
BIN = Path(sys.executable).parent
NEWSLETTER = str(BIN / "newsletter")
# Bounds for waiting on processes: generous, they only turn a hang into a clear failure.
RUN_TIMEOUT = 120.0
START_TIMEOUT = 20.0


class FakeProviderProcess:
    """``python -m newsletter.devtools.fake_provider`` on a free port, recording what it accepts."""

    def __init__(self, record: Path, *, latency_ms: float = 10.0, extra: list[str] = (),
                 cwd: Path | None = None):
        self.record = Path(record)
        self.record.touch()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter.devtools.fake_provider", "--port", "0",
             "--latency-ms", str(latency_ms), "--record", str(self.record), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True, cwd=cwd,
        )
        line = self.proc.stdout.readline()  # "fake provider listening on http://host:port"
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"the fake provider did not start: {line!r}")
        self.base_url = line.rsplit(" ", 1)[1].strip()

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> FakeProviderProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate ``proc`` (by its pid), killing it if it does not go; reap it either way."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def read_records(path: Path) -> list[dict]:
    """The messages the fake accepted, one dict per message."""
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def count_lines(path: Path) -> int:
    with Path(path).open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 16), b""))


def recorded_ids(records: list[dict]) -> Counter:
    """How often each subscriber id was accepted by the provider."""
    return Counter(int(r["metadata"]["subscriber_id"]) for r in records)


# -- the database -----------------------------------------------------------------------------

def seed_subscribers(database_url: str, active: int, *, inactive: int = 0) -> tuple[set[int],
                                                                                   set[int]]:
    """Bulk-insert ``active`` active and ``inactive`` unsubscribed subscribers.

    Returns the ids of each group.
    """
    from newsletter.store.db import connect
    from newsletter.store.tables import subscribers

    engine = connect(database_url)
    now = datetime.now(UTC)

    def row(i: int, status: str) -> dict:
        return {"email": f"reader{i}@example.com", "email_key": f"reader{i}@example.com",
                "name": f"Reader {i}", "status": status, "source": "test", "attributes": {},
                "consented_at": now, "created_at": now, "updated_at": now,
                "unsubscribed_at": now if status != "active" else None}

    chunk = 10_000
    total = active + inactive
    with engine.begin() as conn:
        for start in range(0, total, chunk):
            conn.execute(subscribers.insert(), [
                row(i, "active" if i < active else "unsubscribed")
                for i in range(start, min(total, start + chunk))])
        ids = conn.execute(sa.select(subscribers.c.id, subscribers.c.status)).all()
    engine.dispose()
    return ({i for i, s in ids if s == "active"}, {i for i, s in ids if s != "active"})


def ledger_rows(database_url: str) -> dict[int, str]:
    """subscriber id -> delivery state, for the (only) send in the database."""
    from newsletter.store.db import normalize_url
    from newsletter.store.tables import deliveries

    engine = sa.create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(deliveries.c.subscriber_id, deliveries.c.status)).all()
    finally:
        engine.dispose()
    return {sid: status for sid, status in rows}


def send_status(database_url: str) -> str | None:
    from newsletter.store.db import normalize_url
    from newsletter.store.tables import sends

    engine = sa.create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sends.c.status)).scalar()
    finally:
        engine.dispose()


# -- the sender -------------------------------------------------------------------------------

def sender_env(provider: str, base_url: str, database_url: str, **overrides) -> dict[str, str]:
    """The environment for `newsletter send` against the fake provider."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NEWSLETTER_") or k.startswith("NEWSLETTER_TEST")}
    env.update({
        "NEWSLETTER_PROVIDER": provider,
        "NEWSLETTER_PROVIDER_BASE_URL": base_url,
        "NEWSLETTER_PROVIDER_API_KEY": API_KEY,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_DATABASE_URL": database_url,
    })
    env.update({f"NEWSLETTER_{k.upper()}": str(v) for k, v in overrides.items()})
    return env


@dataclass
class Run:
    """One `newsletter` process, its output going to files (a pipe could fill and block it)."""

    proc: subprocess.Popen
    out_path: Path
    err_path: Path
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    extra: dict = field(default_factory=dict)

    def wait(self, timeout: float = RUN_TIMEOUT) -> Run:
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"`newsletter` did not finish within {timeout:.0f} s; "
                                 f"stderr: {self.err_path.read_text()[-2000:]}") from None
        self.stdout = self.out_path.read_text()
        self.stderr = self.err_path.read_text()
        return self

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


_runs = [0]


def start_newsletter(args: list[str], env: dict[str, str], cwd: Path, logs: Path) -> Run:
    _runs[0] += 1
    logs.mkdir(parents=True, exist_ok=True)
    out_path = logs / f"run{_runs[0]}.out"
    err_path = logs / f"run{_runs[0]}.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen([NEWSLETTER, *args], env=env, cwd=cwd, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return Run(proc, out_path, err_path)


def run_newsletter(args: list[str], env: dict[str, str], cwd: Path, logs: Path) -> Run:
    return start_newsletter(args, env, cwd, logs).wait()


def start_send(env: dict[str, str], cwd: Path, logs: Path, *extra: str) -> Run:
    return start_newsletter(["send", "--week", WEEK, *extra], env, cwd, logs)


def wait_for_records(run: Run, record: Path, at_least: int,
                     timeout: float = RUN_TIMEOUT) -> bool:
    """Wait until the provider has accepted ``at_least`` messages in all; False if the sender
    exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_lines(record) >= at_least:
            return True
        if run.proc.poll() is not None:
            return False
        time.sleep(0.002)
    raise AssertionError(f"the provider did not reach {at_least} messages in {timeout:.0f} s")
