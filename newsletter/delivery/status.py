"""``newsletter status``: what happened to a week's send (and to earlier, cancelled ones)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..clock import utc_now
from ..config import Config
from ..edition.content import resolve_week
from ..providers import REGISTRY, transport_class
from ..store.db import connect
from .ledger import queries, sends
from .states import DeliveryStatus, SendStatus


@dataclass(frozen=True)
class StatusReport:
    send: sends.SendRecord
    counts: dict[str, int]
    first_sent: datetime | None
    last_sent: datetime | None
    errors: list[tuple[str, str, int]]
    idempotent: bool
    # Earlier sends of the same week (cancelled), oldest first, with their counts.
    earlier: list[tuple[sends.SendRecord, dict[str, int]]] = field(default_factory=list)


def send_status(config: Config, week: str | None) -> StatusReport | None:
    """The week's send with its counts, times and most common errors; None if never started."""
    engine = connect(config.database_url)
    every = sends.sends_of_week(engine, resolve_week(week, config.timezone))
    if not every:
        return None
    send = every[-1]
    first, last = queries.sent_span(engine, send.id)
    # The provider the send went through decides what its unknowns mean, not today's config.
    provider = send.provider if send.provider in REGISTRY else config.provider
    return StatusReport(send, queries.counts(engine, send.id), first, last,
                        queries.top_errors(engine, send.id),
                        transport_class(provider).idempotent,
                        [(s, queries.counts(engine, s.id)) for s in every[:-1]])


STATES = ("sent", "failed", "unknown", "skipped", "pending", "in_flight")


def counts_line(counts: dict[str, int]) -> str:
    """``3 sent, 0 failed, ...``: every delivery state in a fixed order (``cancelled`` when
    there are such rows)."""
    shown = STATES + ((DeliveryStatus.CANCELLED,) if counts.get("cancelled") else ())
    return ", ".join(f"{counts.get(state, 0)} {state}" for state in shown)


def next_steps(week: str, counts: dict[str, int], *, idempotent: bool,
               status: str = "") -> list[str]:
    """What the operator can run next, given the send's counts."""
    hints = []
    unfinished = ((counts.get("pending") or counts.get("in_flight"))
                  and status not in (SendStatus.CANCELLED, SendStatus.PAUSED))
    # An idempotent provider's unknown rows are repeated by a resumed send; only those that
    # ran out of attempts (or out of the provider's memory of the key) need a person.
    if counts.get("unknown") and not (idempotent and unfinished):
        hints.append(f"{counts['unknown']} recipient(s) may or may not have received it; "
                     f"`newsletter send --week {week} --retry-unknown` sends to them again")
    if counts.get("failed"):
        hints.append(f"after fixing the cause, `newsletter send --week {week} --retry-failed` "
                     "retries the failed recipients")
    if unfinished:
        hints.append(f"unfinished: `newsletter send --week {week}` resumes, or `newsletter "
                     f"send --week {week} --cancel` ends it for good")
    if status == SendStatus.PAUSED:
        hints.append(f"paused by the brake: look at what came back (`newsletter events --week "
                     f"{week}`); `newsletter send --week {week} --resume-paused` goes on (the "
                     f"brake then judges what is sent from then on), `newsletter send --week "
                     f"{week} --cancel` ends it")
    if status == SendStatus.CANCELLED:
        hints.append(f"cancelled: `newsletter send --week {week}` starts a new send of the "
                     "week to every active subscriber")
    return hints


def gate_lines(config: Config, send: sends.SendRecord) -> list[str]:
    """``status``'s lines on the canary and the brake: where the slice stands, and the
    figures the brake judges against its limits."""
    from .brake import Thresholds, judge
    from .gate import figures

    lines = []
    if send.canary_size:
        if send.canary_until is None:
            where = "being sent first"
        elif send.canary_until > utc_now() and send.status == SendStatus.SENDING:
            where = f"sent; waiting until {send.canary_until:%Y-%m-%d %H:%M:%S} UTC"
        else:
            where = f"sent; the wait ended {send.canary_until:%Y-%m-%d %H:%M:%S} UTC"
        lines.append(f"  canary    {send.canary_size:,} recipient(s), {where}")
    limits = Thresholds.of(config)
    if limits.off:
        return lines + ["  brake     off (brake_bounce_rate and brake_complaint_rate are 0)"]
    with connect(config.database_url).connect() as conn:
        found = figures(conn, send.id, send.brake_since)
    since = (f" since the resume at {send.brake_since:%Y-%m-%d %H:%M} UTC"
             if send.brake_since else "")
    sample = (f"{min(limits.min_sent, send.canary_size):,}" if send.canary_size
              else f"{limits.min_sent:,}")
    verdict = "over the limit" if judge(found, limits, canary_size=send.canary_size) else \
        "within the limits"
    lines.append(f"  brake     {found.line()}{since}: {verdict} (pauses at "
                 f"{limits.bounce_rate:.2%} hard bounces or {limits.complaint_rate:.2%} "
                 f"complaints, once {sample} sent and {limits.min_events} of a kind)")
    return lines
