"""End-to-end delivery: `newsletter send` against the fake provider in a process of its own.

For each list size, a fresh database is seeded with that many active subscribers, the fake
provider is started (answering each request after --latency-ms, recording what it accepts) and
`newsletter send --week 2026-W47` runs as a child process with provider = postmark: batches of
500, each message carrying its full filled-in HTML and text. Reported per size:

- recipients per second: end to end (the child's whole life: start, render, snapshot, send)
  and while sending (from the ledger: first to last row recorded as sent);
- the sender's own peak RSS (VmHWM, read from /proc while it runs) and the peak of its whole
  process tree (ru_maxrss from wait4, which takes the largest of the sender and its children:
  the preflight check runs in a child process and starts SpamAssassin, itself ~120 MiB);
- the tree's CPU time (user + sys) per recipient.

Targets on a 2-core machine: at least 2,000 recipients/s; the sender's peak RSS for 100,000
within 10 % of that for 10,000, and under 150 MB. The fake's record is checked: everyone
exactly once.
SQLite by default; --database-url postgresql://... runs on PostgreSQL (each size in a schema of
its own, dropped afterwards).

    .venv/bin/python bench/bench_delivery.py [--sizes 10000 100000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import figure  # noqa: E402
from seed import seed_many  # noqa: E402

from tests.process_helpers import (  # noqa: E402
    WEEK,
    FakeProviderProcess,
    read_records,
    sender_env,
)

NEWSLETTER = str(Path(sys.executable).parent / "newsletter")
RATE_TARGET = 2_000     # recipients/s end to end, at the largest size
GROWTH_TARGET = 10.0    # % of the sender's peak RSS at the smallest size
PEAK_TARGET_MB = 150.0  # the sender's peak RSS at the largest size
MB_PER_MIB = 1.048576


@dataclass
class Result:
    n: int
    wall: float
    sending_rate: float
    peak_mib: float        # the sender process itself
    tree_peak_mib: float   # the sender or any of its children, whichever was largest
    cpu_seconds: float     # all the senders together, with their children
    shares: list[int] = field(default_factory=list)  # what each sender sent itself

    @property
    def rate(self) -> float:
        return self.n / self.wall

    @property
    def cpu_us_per_recipient(self) -> float:
        return self.cpu_seconds / self.n * 1e6


@contextmanager
def database(base_url: str | None, tmp: Path):
    """A fresh, empty database: a SQLite file, or a new schema on the PostgreSQL server."""
    if not base_url or base_url.startswith("sqlite"):
        yield f"sqlite:///{tmp / 'newsletter.db'}"
        return
    import psycopg

    plain = base_url.replace("postgresql+psycopg://", "postgresql://")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in plain else "?"
    try:
        yield f"{plain}{sep}options=-csearch_path%3D{schema}"
    finally:
        from newsletter.store.db import dispose_engines

        dispose_engines()
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


class HighWaterMark(threading.Thread):
    """Follows a process's VmHWM (its peak resident set so far) until the process is gone."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.path, self.kib = Path(f"/proc/{pid}/status"), 0

    def run(self) -> None:
        while True:
            try:
                status = self.path.read_text()
            except (FileNotFoundError, ProcessLookupError):
                return
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.kib = max(self.kib, int(line.split()[1]))
            if "State:\tZ" in status:  # exited, waiting to be reaped: the peak is final
                return
            time.sleep(0.01)


def sending_rate(database_url: str) -> float:
    """Rows recorded as sent per second, first to last (what `newsletter status` shows)."""
    import sqlalchemy as sa

    from newsletter.store.db import normalize_url
    from newsletter.store.tables import deliveries

    engine = sa.create_engine(normalize_url(database_url))
    d = deliveries.c
    try:
        with engine.connect() as conn:
            first, last, n = conn.execute(sa.select(sa.func.min(d.updated_at),
                                                    sa.func.max(d.updated_at), sa.func.count())
                                          .where(d.status == "sent")).one()
    finally:
        engine.dispose()
    if isinstance(first, str):  # SQLite without the column type's conversion
        from datetime import datetime

        first, last = datetime.fromisoformat(first), datetime.fromisoformat(last)
    seconds = (last - first).total_seconds()
    return n / seconds if seconds > 0 else float("nan")


def run(n: int, args: argparse.Namespace, *, senders: int = 1,
        finished: Callable[[str, dict[str, str], Path], None] | None = None,
        sampled: dict[str, object] | None = None) -> Result:
    """Seed ``n`` subscribers, run ``senders`` `newsletter send` processes at once against the
    fake, check that everyone got the edition exactly once. ``finished(database_url, env,
    project)`` is called on the finished ledger, before the database goes; ``sampled``, when
    given, gets the first sender's py-spy stacks (``stacks``: a Counter of collapsed stacks)
    or why there are none (``why``)."""
    with tempfile.TemporaryDirectory(prefix="nl-bench-delivery-") as tmp_name:
        tmp = Path(tmp_name)
        project = tmp / "project"
        project.mkdir()
        shutil.copy(ROOT / "newsletter.toml", project / "newsletter.toml")
        shutil.copytree(ROOT / "templates", project / "templates")
        shutil.copytree(ROOT / "items", project / "items")
        with database(args.database_url, tmp) as database_url:
            seed_many(database_url, n)
            record = tmp / "provider.jsonl"
            with FakeProviderProcess(record, latency_ms=args.latency_ms) as fake:
                env = sender_env("postmark", fake.base_url, database_url,
                                 batch_size=args.batch_size, concurrency=args.concurrency)
                start = time.perf_counter()
                procs = [Sender(env, project, tmp / f"send{i}.err") for i in range(senders)]
                spy = Spy(procs[0].proc.pid, tmp / "stacks.txt") if sampled is not None \
                    else None
                for proc in procs:
                    proc.wait()
                wall = time.perf_counter() - start
                if spy is not None:
                    sampled.update(spy.collect())
            received = Counter(int(r["metadata"]["subscriber_id"]) for r in read_records(record))
            if len(received) != n or set(received.values()) != {1} \
                    or set(received) != active_ids(database_url):
                raise SystemExit(f"the provider did not receive everyone exactly once: "
                                 f"{len(received)} distinct of {n}, "
                                 f"max {max(received.values(), default=0)} each")
            rate = sending_rate(database_url)
            if finished is not None:
                finished(database_url, env, project)
    return Result(n, wall, rate, max(p.peak_mib for p in procs),
                  max(p.tree_peak_mib for p in procs), sum(p.cpu_seconds for p in procs),
                  [p.sent for p in procs])


class Sender:
    """One `newsletter send` child: its peak RSS followed while it runs, its rusage at exit."""

    def __init__(self, env: dict[str, str], project: Path, err_path: Path):
        self.err_path = err_path
        with err_path.open("w") as err:
            self.proc = subprocess.Popen([NEWSLETTER, "send", "--week", WEEK], env=env,
                                         cwd=project, stdout=subprocess.PIPE, stderr=err,
                                         text=True, start_new_session=True)
        self.hwm = HighWaterMark(self.proc.pid)
        self.hwm.start()

    def wait(self) -> None:
        out = self.proc.stdout.read()
        # wait4: the rusage of this child and the children it waited for (peak, CPU).
        self.hwm.join(timeout=5)  # it sees the zombie before wait4 reaps it
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.proc.stdout.close()
        if self.proc.returncode != 0:
            raise SystemExit(f"newsletter send exited {self.proc.returncode}:\n{out}\n"
                             f"{self.err_path.read_text()[-3000:]}")
        share = re.search(r"this run: sent (\d+)", out)
        self.sent = int(share[1]) if share else 0
        self.peak_mib = self.hwm.kib / 1024
        self.tree_peak_mib = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
        self.cpu_seconds = usage.ru_utime + usage.ru_stime


class Spy:
    """py-spy sampling one process until it exits, without pausing it (--nonblocking)."""

    def __init__(self, pid: int, out: Path):
        self.out = out
        exe = Path(sys.executable).parent / "py-spy"
        self.proc = None
        if exe.exists():
            self.proc = subprocess.Popen([str(exe), "record", "--pid", str(pid), "--format",
                                          "raw", "--rate", "200", "--nonblocking", "--output",
                                          str(out)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)

    def collect(self) -> dict[str, object]:
        if self.proc is None:
            return {"why": "py-spy is not installed (pip install -e '.[test]')"}
        _, err = self.proc.communicate(timeout=60)
        if not self.out.exists():
            return {"why": f"py-spy wrote nothing: {err.strip()[-300:]}"}
        stacks: Counter[str] = Counter()
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                stacks[stack] += int(count)
        return {"stacks": stacks}


def active_ids(database_url: str) -> set[int]:
    import sqlalchemy as sa

    from newsletter.store.db import normalize_url
    from newsletter.store.tables import subscribers

    engine = sa.create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(subscribers.c.id)
                                    .where(subscribers.c.status == "active")).scalars())
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--database-url", default=None,
                        help="postgresql://... to run on PostgreSQL (default: SQLite)")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    backend = "PostgreSQL" if args.database_url and "postgres" in args.database_url \
        else "SQLite"
    print(f"newsletter send -> fake provider (postmark, {args.latency_ms:.0f} ms latency, "
          f"batches of {args.batch_size}, {args.concurrency} in flight) on {backend}; "
          f"{os.cpu_count()} CPUs")
    print(f"{'recipients':>10} {'wall s':>7} {'end-to-end/s':>13} {'sending/s':>10} "
          f"{'sender peak MiB':>16} {'tree peak MiB':>14} {'CPU us/recipient':>17}")
    results = []
    for n in args.sizes:
        r = run(n, args)
        results.append(r)
        print(f"{r.n:>10,} {r.wall:>7.1f} {r.rate:>13,.0f} {r.sending_rate:>10,.0f} "
              f"{r.peak_mib:>16.1f} {r.tree_peak_mib:>14.1f} {r.cpu_us_per_recipient:>17.0f}",
              flush=True)
    largest = max(results, key=lambda r: r.n)
    figure(f"delivery of {largest.n:,}: while sending", largest.sending_rate, "recipients/s")
    figure(f"delivery of {largest.n:,}: CPU", largest.cpu_us_per_recipient, "us/recipient",
           better="lower")
    figure(f"delivery of {largest.n:,}: end to end", largest.rate, "recipients/s",
           target=RATE_TARGET,
           line=f"throughput at {largest.n:,}: {largest.rate:,.0f} recipients/s end to end "
                f"(target >= {RATE_TARGET:,}/s): "
                f"{'ok' if largest.rate >= RATE_TARGET else 'MISSED'}")
    peak_mb = largest.peak_mib * MB_PER_MIB
    figure(f"delivery of {largest.n:,}: sender's peak RSS", peak_mb, "MB",
           target=PEAK_TARGET_MB, better="lower")
    if len(results) > 1:
        smallest = min(results, key=lambda r: r.n)
        growth = (largest.peak_mib - smallest.peak_mib) / smallest.peak_mib * 100
        within = abs(growth) <= GROWTH_TARGET and peak_mb < PEAK_TARGET_MB
        # A peak that shrinks is no regression: the table judges the growth, signed.
        figure(f"delivery: sender's peak RSS growth {smallest.n:,} -> {largest.n:,}", growth,
               "%", target=GROWTH_TARGET, better="lower",
               line=f"sender's peak RSS {smallest.n:,} -> {largest.n:,}: "
                    f"{smallest.peak_mib:.1f} -> {largest.peak_mib:.1f} MiB, {growth:+.1f} % "
                    f"(target within {GROWTH_TARGET:.0f} % and under {PEAK_TARGET_MB:.0f} MB): "
                    f"{'ok' if within else 'MISSED'}")


if __name__ == "__main__":
    main()
