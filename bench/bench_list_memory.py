"""Memory stays flat: `subscribers count`, `subscribers list --format csv` and the sender's
`iter_recipients` on 100,000 and on 1,000,000 subscribers (SQLite).

Each command runs in its own process, which reports its own peak RSS (VmHWM, Linux) at exit:
flat memory means about the same number for 100k and 1M rows. (Not wait4's ru_maxrss: that
would include the RSS of this parent process, from before the child's exec.) The rows are
generated with one bulk INSERT (not through import, which is timed by bench_import.py).

    .venv/bin/python bench/bench_list_memory.py [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import figure

from newsletter.store import db

STATUSES = ("active",) * 8 + ("pending", "unsubscribed")
# Prepended to every child: print the process's peak RSS to stderr when it exits.
REPORT_PEAK = """
import atexit, sys
def _peak():
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    sys.stderr.write(f"PEAK_RSS_KIB {kib}\\n")
atexit.register(_peak)
"""
CLI = REPORT_PEAK + "from newsletter.cli import main; sys.argv[0] = 'newsletter'; main()"
RECIPIENTS = REPORT_PEAK + (
    "from newsletter.store import db\nfrom newsletter.audience import lookup\n"
    "n = sum(1 for _ in lookup.iter_recipients(db.connect(sys.argv[1])))\n"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        url = f"sqlite:///{path}"
        db.connect(url)  # migrate
        db.dispose_engines()
        env = {**os.environ, "NEWSLETTER_DATABASE_URL": url}
        commands = {
            "subscribers count": [sys.executable, "-c", CLI, "subscribers", "count"],
            "subscribers list --format csv": [
                sys.executable, "-c", CLI, "subscribers", "list", "--format", "csv"
            ],
            "iter_recipients (sender)": [sys.executable, "-c", RECIPIENTS, url],
        }
        print(f"{'rows':>10}  {'command':<30} {'seconds':>8} {'peak RSS':>10}")
        have = 0
        for size in sizes:
            start = time.perf_counter()
            _bulk_insert(path, have, size)
            have = size
            print(f"{size:>10,}  (generated in {time.perf_counter() - start:.1f} s, "
                  f"database {path.stat().st_size / 1e6:.0f} MB)")
            for label, cmd in commands.items():
                seconds, rss = _measure(cmd, env, tmp)
                # No target: flat is the same figure at every size, read side by side.
                figure(f"{label} on {size:,}: peak RSS", rss / 1024, "MiB", better="lower",
                       line=f"{size:>10,}  {label:<30} {seconds:8.2f} {rss / 1024:7.1f} MiB")


def _bulk_insert(path: Path, start: int, stop: int) -> None:
    """Rows straight into SQLite, in the storage format SQLAlchemy uses for these columns."""
    stamp = "2026-01-05 08:00:00.000000"
    rows = (
        (f"Reader.{i}@example.com", f"reader.{i}@example.com", f"Reader {i}",
         STATUSES[i % len(STATUSES)], "import:bench.csv", stamp, stamp, '{"city": "Lisbon"}',
         stamp, stamp)
        for i in range(start, stop)
    )
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO subscribers (email, email_key, name, status, source, consented_at,"
        " confirmed_at, attributes, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.execute("COMMIT")
    conn.close()


def _measure(cmd: list[str], env: dict[str, str], cwd: str) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of one child process; its output is discarded."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{cmd[-1]} failed ({proc.returncode}): {proc.stderr.strip()}")
    peak = next(line.split()[1] for line in proc.stderr.splitlines()
                if line.startswith("PEAK_RSS_KIB"))
    return seconds, int(peak)


if __name__ == "__main__":
    main()
