"""The fixed cost of a send before its first message: the preflight check, made and remembered.

A new send checks its edition first, in a child process (a fresh interpreter, then
SpamAssassin loading its rules). The verdict is remembered by what it was made from
(``preflight.verdicts``), so the next send or resume of the unchanged edition, or the send
after `newsletter check`, reads it back instead. In a copy of the sample project, SQLite:

- ``made``: ``check_before_send`` with nothing remembered (the child process, the check);
- ``remembered``: the same call again (the fingerprint and one SELECT), best and median of
  several runs.

Target: a remembered verdict in at most 50 ms (the check itself takes seconds).

    .venv/bin/python bench/bench_check_cache.py [--runs 9]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import figure  # noqa: E402

from newsletter.config import load_config  # noqa: E402
from newsletter.edition.render import render_week  # noqa: E402
from newsletter.preflight.verdicts import check_before_send  # noqa: E402

WEEK = "2026-W47"
REMEMBERED_TARGET = 0.050  # seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        shutil.copy(ROOT / "newsletter.toml", project)
        for folder in ("items", "templates"):
            shutil.copytree(ROOT / folder, project / folder)
        config = load_config(project / "newsletter.toml", environ={
            "NEWSLETTER_DATABASE_URL": f"sqlite:///{project / 'newsletter.db'}"})
        content = render_week(config, WEEK).content_hash
        today = date.today()

        started = time.perf_counter()
        report = check_before_send(config, WEEK, content, today=today)
        made = time.perf_counter() - started
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            again = check_before_send(config, WEEK, content, today=today)
            times.append(time.perf_counter() - started)
        assert again == report, "the remembered verdict differs from the one made"
    figure("check made (child process, SpamAssassin)", made, "s", better="lower",
           line=f"check made:       {made:6.2f} s  ({report.summary})")
    best, median = min(times), statistics.median(times)
    figure("check remembered", median, "s", target=REMEMBERED_TARGET, better="lower",
           line=f"check remembered: {best * 1000:6.1f} ms best, {median * 1000:.1f} ms median "
                f"of {args.runs} (target <= {REMEMBERED_TARGET * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
