"""Showing a send's progress: a rich progress bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..clock import utc_now
from .loop import Progress
from .states import DeliveryStatus

log = logging.getLogger("newsletter.send")
LOG_EVERY = 10.0  # seconds between plain progress lines

Report = Callable[[Progress], None]  # told of the run's progress after every batch


@contextmanager
def progress_reporter(week: str, total: int, *,
                      interactive: bool | None = None) -> Iterator[Report]:
    """Yield a callback for ``Delivery(on_progress=...)``."""
    interactive = sys.stderr.isatty() if interactive is None else interactive
    if interactive:
        with _bar(week, total) as update:
            yield update
    else:
        yield _lines(week)


@contextmanager
def _bar(week: str, total: int) -> Iterator[Report]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import (
        Progress as RichProgress,
    )

    with RichProgress(
        TextColumn(f"[bold]{week}[/]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("sent {task.fields[sent]}  failed {task.fields[failed]}  "
                   "{task.fields[rate]:.0f}/s"),
        TimeRemainingColumn(), transient=False,
    ) as bar:
        task = bar.add_task("send", total=total, sent=0, failed=0, rate=0.0)

        def update(p: Progress) -> None:
            bar.update(task, completed=p.finished, sent=p.counts[DeliveryStatus.SENT],
                       failed=p.counts[DeliveryStatus.FAILED], rate=_rate(p))

        yield update


def _lines(week: str) -> Report:
    last = [0.0]

    def update(p: Progress) -> None:
        now = time.monotonic()
        if now - last[0] < LOG_EVERY and p.finished < p.total:
            return
        last[0] = now
        rate = _rate(p)
        left = p.total - p.finished
        eta = f"{left / rate:.0f}s" if rate else "?"
        log.info("%s: %d/%d done, %d sent, %d failed, %d unknown this run, %.0f/s, ETA %s",
                 week, p.finished, p.total, p.counts[DeliveryStatus.SENT],
                 p.counts[DeliveryStatus.FAILED], p.counts[DeliveryStatus.UNKNOWN], rate, eta)

    return update


def _rate(p: Progress) -> float:
    elapsed = (utc_now() - p.started).total_seconds()
    return p.counts[DeliveryStatus.SENT] / elapsed if elapsed > 0 else 0.0
