"""Dry-run memory and speed: peak memory must not grow with the list.

Seeds 10,000 and 100,000 active subscribers into fresh SQLite databases, runs the dry-run send
for each in a child process, and prints the child's peak RSS and time. Target: the 100,000 run
within 10 % of the 10,000 run's peak memory. (It writes one .eml per subscriber: about 3 GB for
100,000, in a temporary folder removed afterwards.)

    .venv/bin/python bench/bench_dry_run.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from figures import figure

ROOT = Path(__file__).resolve().parent.parent
GROWTH_TARGET = 10.0  # % of the smallest run's peak memory

CHILD = """
import resource, sys, time
from newsletter.config import load_config
from newsletter.delivery.dry_run import dry_run
config = load_config(sys.argv[1])
start = time.perf_counter()
result = dry_run(config, "2026-W47", sys.argv[2])
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{result.count} {elapsed:.2f} {peak:.1f}")
"""


def seed(database_url: str, n: int) -> None:
    from newsletter.store.db import connect
    from newsletter.store.tables import subscribers

    engine = connect(database_url)
    now = datetime.now(UTC)
    chunk = 10_000
    with engine.begin() as conn:
        for start in range(0, n, chunk):
            conn.execute(
                subscribers.insert(),
                [
                    {
                        "email": f"reader{i}@example.com",
                        "email_key": f"reader{i}@example.com",
                        "name": f"Reader {i}",
                        "status": "active",
                        "source": "bench",
                        "attributes": {},
                        "consented_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(n, start + chunk))
                ],
            )
    engine.dispose()


def run(n: int) -> tuple[int, float, float]:
    with tempfile.TemporaryDirectory(prefix="nl-bench-") as tmp:
        project = Path(tmp)
        shutil.copy(ROOT / "newsletter.toml", project / "newsletter.toml")
        shutil.copytree(ROOT / "templates", project / "templates")
        shutil.copytree(ROOT / "items", project / "items")
        seed(f"sqlite:///{project / 'subscribers' / 'newsletter.db'}", n)
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(project / "newsletter.toml"), str(project / "out")],
            check=True, capture_output=True, text=True,
        ).stdout.split()
        return int(out[0]), float(out[1]), float(out[2])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    peaks = []
    for n in args.sizes:
        count, seconds, peak = run(n)
        peaks.append(peak)
        figure(f"dry run of {count:,}", count / seconds, "msg/s",
               line=f"{count:>7} messages: {seconds:6.1f} s  {count / seconds:8.0f} msg/s  "
                    f"peak RSS {peak:6.1f} MiB")
        figure(f"dry run of {count:,}: peak RSS", peak, "MiB", better="lower")
    if len(peaks) > 1:
        growth = (max(peaks) - peaks[0]) / peaks[0] * 100
        figure(f"dry run: peak memory growth {args.sizes[0]:,} -> {args.sizes[-1]:,}", growth,
               "%", target=GROWTH_TARGET, better="lower",
               line=f"peak memory growth from {args.sizes[0]} to {args.sizes[-1]}: "
                    f"{growth:+.1f} %  (target within {GROWTH_TARGET:.0f} %)")


if __name__ == "__main__":
    main()
