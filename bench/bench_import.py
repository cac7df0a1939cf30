"""Import of a 100,000-row CSV into a fresh SQLite database.

Target: at most 10 s for 100,000 rows. Also times a dry run and a re-import of the same file
(which must change nothing), and prints rows per second.

    .venv/bin/python bench/bench_import.py [--rows N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from figures import figure

from newsletter.audience import transfer
from newsletter.store import db

TARGET_SECONDS, TARGET_ROWS = 10.0, 100_000  # at most 10 s for 100,000 rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "subscribers.csv"
        _write_csv(path, args.rows)
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = db.connect(url)  # migrations are not part of the figure

        dry = _timed(lambda: transfer.import_csv(engine, path, dry_run=True))
        first, report = _timed(lambda: transfer.import_csv(engine, path))
        again, report2 = _timed(lambda: transfer.import_csv(engine, path))
        print(f"file: {args.rows:,} rows, {path.stat().st_size / 1e6:.1f} MB; database: "
              f"{db.safe_url(url).split('?')[0]}")
        figure(f"import dry run of {args.rows:,} rows", dry[0], "s", better="lower",
               line=f"dry run:   {dry[0]:6.2f} s")
        # The target is for 100,000 rows; another size has none.
        target = TARGET_SECONDS if args.rows == TARGET_ROWS else None
        figure(f"import of {args.rows:,} rows", first, "s", target=target, better="lower",
               line=f"import:    {first:6.2f} s  ({args.rows / first:,.0f} rows/s, "
                    f"{report.added:,} added)  target <= {TARGET_SECONDS:.0f} s for "
                    f"{TARGET_ROWS:,} rows")
        figure(f"re-import of {args.rows:,} rows (nothing changes)", again, "s",
               better="lower",
               line=f"re-import: {again:6.2f} s  ({report2.added} added, "
                    f"{report2.unchanged:,} unchanged)")
        assert report.added == args.rows and report2.added == 0


def _write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "name", "city", "plan"])
        for i in range(rows):
            writer.writerow([f"Reader.{i}@Example{i % 97}.com", f"Reader {i}", "Lisbon", "free"])


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


if __name__ == "__main__":
    main()
