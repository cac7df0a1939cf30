"""Progress off a terminal: one plain log line at a time, with counts, rate and ETA."""

import logging
from collections import Counter

from newsletter.delivery.loop import Progress
from newsletter.delivery.progress import progress_reporter


def test_plain_lines_report_counts_and_finish(caplog):
    caplog.set_level(logging.INFO, logger="newsletter.send")
    with progress_reporter("2026-W47", 1000, interactive=False) as update:
        p = Progress(total=1000, done_before=0)
        p.counts = Counter(sent=400, failed=3)
        update(p)
        p.counts = Counter(sent=500, failed=3)
        update(p)  # within ten seconds of the last line: nothing
        p.counts = Counter(sent=995, failed=5)
        update(p)  # the end is always reported
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("2026-W47: 403/1000 done, 400 sent, 3 failed, 0 unknown")
    assert lines[1].startswith("2026-W47: 1000/1000 done, 995 sent, 5 failed")
    assert "/s, ETA" in lines[0]
