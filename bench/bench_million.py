"""A million readers on one small machine, and three senders on one PostgreSQL.

In one run, side by side:

1. **Import**: a 1,000,000-row CSV through `subscribers import`'s own path (every address
   validated) into a fresh SQLite database. Target: at most 60 s.
2. **SQLite**, 100,000 then 1,000,000 subscribers (seeded by ``bench/seed.py``, not the
   import): one `newsletter send` against the fake Postmark answering after 20 ms, batches of
   500 with the full filled-in content. Targets at 1,000,000: at least 5,000 recipients/s end
   to end; the sender's peak RSS under 150 MB and within 10 % of its 100,000 figure; `newsletter
   status` and `newsletter subscribers count` on the finished ledger under 1 s each (the whole
   command, as a person waits for it). The 100,000 run is sampled by py-spy: the frames where
   the sender spends its CPU are printed.
3. **PostgreSQL**, 1,000,000 subscribers: one sender, then three `newsletter send` processes on
   the same database at once. Every recipient exactly once, each sender's share printed (none
   idle), and the three together at least as fast as the one.

Each size checks the fake's record: everyone exactly once.

    .venv/bin/python bench/bench_million.py [--size 1000000] [--small 100000]
        [--parts import sqlite postgresql] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench_delivery  # noqa: E402
from bench_import import _timed, _write_csv  # noqa: E402
from figures import figure  # noqa: E402

from tests.process_helpers import WEEK  # noqa: E402

POSTGRES = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/test")
NEWSLETTER = bench_delivery.NEWSLETTER
IMPORT_TARGET = 60.0       # s for the million
RATE_TARGET = 5_000        # recipients/s end to end
PEAK_TARGET_MB = 150.0
GROWTH_TARGET = 10.0       # % of the sender's peak RSS at the small size
COMMAND_TARGET = 1.0       # s for `status` and `subscribers count`
CPU_TARGET = 100.0         # us of CPU per recipient
TOP_FRAMES = 12


def send_args(database_url: str | None) -> argparse.Namespace:
    return argparse.Namespace(database_url=database_url, latency_ms=20.0, batch_size=500,
                              concurrency=4)


def import_part(n: int) -> None:
    from newsletter.audience import transfer
    from newsletter.store import db

    with tempfile.TemporaryDirectory(prefix="nl-bench-million-") as tmp:
        path = Path(tmp) / "subscribers.csv"
        _write_csv(path, n)
        engine = db.connect(f"sqlite:///{Path(tmp) / 'bench.db'}")
        seconds, report = _timed(lambda: transfer.import_csv(engine, path))
        db.dispose_engines()
    assert report.added == n, f"{report.added} added of {n}"
    figure(f"million: import of {n:,} rows (SQLite)", seconds, "s", target=IMPORT_TARGET,
           better="lower",
           line=f"import of {n:,} rows, every address validated: {seconds:.1f} s "
                f"({n / seconds:,.0f} rows/s; target <= {IMPORT_TARGET:.0f} s)")


def timed_commands(results: dict[str, float]):
    """A ``finished`` hook: how long `status` and `subscribers count` take on the ledger."""
    def finished(database_url: str, env: dict[str, str], project: Path) -> None:
        for name, args in (("status", ["status", "--week", WEEK]),
                           ("subscribers count", ["subscribers", "count"])):
            start = time.perf_counter()
            subprocess.run([NEWSLETTER, *args], env=env, cwd=project, check=True,
                           stdout=subprocess.DEVNULL)
            results[name] = time.perf_counter() - start
    return finished


def row(label: str, r: bench_delivery.Result) -> None:
    shares = " + ".join(f"{s:,}" for s in r.shares)
    print(f"{label:<22} {r.n:>10,} {r.wall:>7.1f} {r.rate:>11,.0f} {r.sending_rate:>10,.0f} "
          f"{r.peak_mib * bench_delivery.MB_PER_MIB:>12.1f} {r.cpu_us_per_recipient:>8.0f}   "
          f"{shares}", flush=True)


def header() -> None:
    print(f"{'':<22} {'recipients':>10} {'wall s':>7} {'end to end':>11} {'sending/s':>10} "
          f"{'sender MB':>12} {'CPU us':>8}   each sender's share")


def sqlite_part(n: int, small: int) -> None:
    profile: dict[str, object] = {}
    first = bench_delivery.run(small, send_args(None), sampled=profile)
    row("SQLite, 1 sender", first)
    commands: dict[str, float] = {}
    big = bench_delivery.run(n, send_args(None), finished=timed_commands(commands))
    row("SQLite, 1 sender", big)
    label = f"million: SQLite send of {n:,}"
    figure(f"{label}: end to end", big.rate, "recipients/s", target=RATE_TARGET)
    peak = big.peak_mib * bench_delivery.MB_PER_MIB
    figure(f"{label}: sender's peak RSS", peak, "MB", target=PEAK_TARGET_MB, better="lower")
    growth = (big.peak_mib - first.peak_mib) / first.peak_mib * 100
    figure(f"{label}: sender's peak RSS growth from {small:,}", growth, "%",
           target=GROWTH_TARGET, better="lower",
           line=f"sender's peak RSS {small:,} -> {n:,}: {growth:+.1f} % "
                f"(target within {GROWTH_TARGET:.0f} %)")
    figure(f"{label}: CPU", big.cpu_us_per_recipient, "us/recipient", target=CPU_TARGET,
           better="lower",
           line=f"CPU per recipient at {n:,} (the sender and its children, the preflight "
                f"check included): {big.cpu_us_per_recipient:.0f} us (target <= "
                f"{CPU_TARGET:.0f})")
    for name, seconds in commands.items():
        figure(f"million: `newsletter {name}` on SQLite at {n:,}", seconds, "s",
               target=COMMAND_TARGET, better="lower",
               line=f"`newsletter {name}` on the finished ledger of {n:,}: {seconds:.2f} s "
                    f"(target < {COMMAND_TARGET:.0f} s)")
    print_profile(profile, small)


def postgresql_part(n: int, url: str) -> None:
    commands: dict[str, float] = {}
    one = bench_delivery.run(n, send_args(url), finished=timed_commands(commands))
    row("PostgreSQL, 1 sender", one)
    three = bench_delivery.run(n, send_args(url), senders=3)
    row("PostgreSQL, 3 senders", three)
    label = f"million: PostgreSQL send of {n:,}"
    figure(f"{label}: end to end, 1 sender", one.rate, "recipients/s", target=RATE_TARGET)
    figure(f"{label}: end to end, 3 senders", three.rate, "recipients/s", target=RATE_TARGET)
    figure(f"{label}: 3 senders over 1", three.rate / one.rate, "x", target=1.0,
           line=f"three senders together {three.rate / one.rate:.2f}x one (target >= 1); "
                f"shares {three.shares}")
    figure(f"{label}: smallest share of 3 senders", min(three.shares) / n * 100, "%",
           line=f"the smallest share of the three: {min(three.shares) / n * 100:.1f} % "
                "(0 would be a sender left idle)")
    peak = max(one.peak_mib, three.peak_mib) * bench_delivery.MB_PER_MIB
    figure(f"{label}: a sender's peak RSS", peak, "MB", target=PEAK_TARGET_MB,
           better="lower")
    for name, seconds in commands.items():
        figure(f"million: `newsletter {name}` on PostgreSQL at {n:,}", seconds, "s",
               target=COMMAND_TARGET, better="lower",
               line=f"`newsletter {name}` on PostgreSQL's finished ledger of {n:,}: "
                    f"{seconds:.2f} s (target < {COMMAND_TARGET:.0f} s)")


def print_profile(profile: dict[str, object], n: int) -> None:
    """The sender's hottest frames from py-spy's collapsed stacks: self time (where the CPU
    went) and total time (what it went on, callees included)."""
    stacks: Counter[str] | None = profile.get("stacks")  # type: ignore[assignment]
    if not stacks:
        print(f"(no profile: {profile.get('why', 'py-spy took no samples')})")
        return
    total = sum(stacks.values())
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"\nwhere the sender's CPU went at {n:,} recipients (py-spy, {total:,} samples of "
          "the running threads):")
    print(f"  {'self %':>7}  frame")
    for frame, count in own.most_common(TOP_FRAMES):
        print(f"  {count / total * 100:7.1f}  {frame}")
    print(f"  {'total %':>7}  frame (callees included), newsletter's own code")
    ours = [(f, c) for f, c in inclusive.most_common() if "newsletter/" in f]
    for frame, count in ours[:TOP_FRAMES]:
        print(f"  {count / total * 100:7.1f}  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--parts", nargs="+", default=["import", "sqlite", "postgresql"],
                        choices=["import", "sqlite", "postgresql"])
    parser.add_argument("--database-url", default=POSTGRES, help="the PostgreSQL server")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; fake Postmark at 20 ms, batches of 500, 4 in flight per "
          "sender")
    if "import" in args.parts:
        import_part(args.size)
    header()
    if "sqlite" in args.parts:
        sqlite_part(args.size, args.small)
    if "postgresql" in args.parts:
        postgresql_part(args.size, args.database_url)


if __name__ == "__main__":
    main()
