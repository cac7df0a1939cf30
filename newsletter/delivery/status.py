"""``newsletter status``: what happened to a week's send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..config import Config
from ..edition.content import resolve_week
from ..providers import transport_class
from ..store.db import connect
from . import ledger


@dataclass(frozen=True)
class StatusReport:
    send: ledger.SendRecord
    counts: dict[str, int]
    first_sent: datetime | None
    last_sent: datetime | None
    errors: list[tuple[str, str, int]]
    idempotent: bool


def send_status(config: Config, week: str | None) -> StatusReport | None:
    """The week's send with its counts, times and most common errors; None if never started."""
    engine = connect(config.database_url)
    send = ledger.find_send(engine, resolve_week(week, config.timezone))
    if send is None:
        return None
    first, last = ledger.sent_span(engine, send.id)
    return StatusReport(send, ledger.counts(engine, send.id), first, last,
                        ledger.top_errors(engine, send.id),
                        transport_class(config.provider).idempotent)


STATES = ("sent", "failed", "unknown", "skipped", "pending", "in_flight")


def counts_line(counts: dict[str, int]) -> str:
    """``3 sent, 0 failed, ...``: every delivery state, in a fixed order."""
    return ", ".join(f"{counts.get(state, 0)} {state}" for state in STATES)


def next_steps(week: str, counts: dict[str, int], *, idempotent: bool) -> list[str]:
    """What the operator can run next, given the send's counts."""
    hints = []
    unfinished = counts.get("pending") or counts.get("in_flight")
    # An idempotent provider's unknown rows are repeated by a resumed send; only those that
    # ran out of attempts need a person.
    if counts.get("unknown") and not (idempotent and unfinished):
        hints.append(f"{counts['unknown']} recipient(s) may or may not have received it; "
                     f"`newsletter send --week {week} --retry-unknown` sends to them again")
    if counts.get("failed"):
        hints.append(f"after fixing the cause, `newsletter send --week {week} --retry-failed` "
                     "retries the failed recipients")
    if unfinished:
        hints.append(f"unfinished: `newsletter send --week {week}` resumes")
    return hints
