"""``newsletter status``: what happened to a week's send (and to earlier, cancelled ones)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from ..clock import utc_now
from ..config import Config
from ..edition.content import resolve_week
from ..providers import REGISTRY
from ..store.db import connect
from . import beats
from .canary import Phase, phase
from .ledger import figures, queries, reconciling, sends
from .stalls import Stall, find_stalls
from .states import FINAL_STATES, OPEN_STATES, DeliveryStatus, SendStatus


@dataclass(frozen=True)
class StatusReport:
    send: sends.SendRecord
    counts: dict[DeliveryStatus, int]
    first_sent: datetime | None
    last_sent: datetime | None
    errors: list[tuple[DeliveryStatus, str, int]]   # (state, error, how many rows)
    # Earlier sends of the same week (cancelled), oldest first, with their counts.
    earlier: list[tuple[sends.SendRecord, dict[DeliveryStatus, int]]] = field(
        default_factory=list)
    # Rows that were unknown and resolved by asking the provider, by its answer.
    reconciled: dict[str, int] = field(default_factory=dict)
    # A send still sending that has made no progress for ``stall_after``.
    stall: Stall | None = None
    # While it is sending: the worker's last heartbeat (``beats``), None if it never beat.
    worker_beat: datetime | None = None


def send_status(config: Config, week: str | None) -> StatusReport | None:
    """The week's send with its counts, times and most common errors; None if never started."""
    engine = connect(config.database_url)
    every = sends.sends_of_week(engine, resolve_week(week, config.timezone))
    if not every:
        return None
    send = every[-1]
    first, last = queries.sent_span(engine, send.id)
    stall = beat = None
    if send.status == SendStatus.SENDING:
        stall = next((found for found in find_stalls(engine, stall_after=config.stall_after,
                                                     now=utc_now())
                      if found.send_id == send.id), None)
        worker = beats.read_beats(engine).get(beats.BeatName.WORKER)
        beat = worker.at if worker is not None else None
    return StatusReport(send, queries.counts(engine, send.id), first, last,
                        queries.top_errors(engine, send.id),
                        [(s, queries.counts(engine, s.id)) for s in every[:-1]],
                        reconciling.reconciled_counts(engine, send.id), stall, beat)


def reconciled_words(reconciled: Mapping[str, int]) -> str:
    """``50 found accepted, 3 found not accepted (sent again)``."""
    return (f"{reconciled.get('accepted', 0)} found accepted, "
            f"{reconciled.get('not_accepted', 0)} found not accepted (sent again)")


# The order ``status`` shows the states in: what came of the rows, then what is left to do.
STATES = (*(s for s in FINAL_STATES if s != DeliveryStatus.CANCELLED), *OPEN_STATES)


def counts_line(counts: Mapping[DeliveryStatus, int]) -> str:
    """``3 sent, 0 failed, ...``: every delivery state in a fixed order (``cancelled`` when
    there are such rows)."""
    cancelled = DeliveryStatus.CANCELLED
    shown = STATES + ((cancelled,) if counts.get(cancelled) else ())
    return ", ".join(f"{counts.get(state, 0)} {state}" for state in shown)


def next_steps(week: str, counts: Mapping[DeliveryStatus, int], *, idempotent: bool,
               status: SendStatus | None = None, provider: str = "") -> list[str]:
    """What the operator can run next, given the send's counts (and its status, if known)."""
    hints = []
    unfinished = (any(counts.get(state) for state in OPEN_STATES)
                  and status not in (SendStatus.CANCELLED, SendStatus.PAUSED))
    # An idempotent provider's unknown rows are repeated by a resumed send; only those that
    # ran out of attempts (or out of the provider's memory of the key) need a person.
    unknown = counts.get(DeliveryStatus.UNKNOWN, 0)
    if unknown and not (idempotent and unfinished):
        if provider in REGISTRY and REGISTRY[provider].reconciles:
            hints.append(f"{unknown} recipient(s) may or may not have received it: "
                         f"`newsletter send --week {week} --reconcile` asks {provider} "
                         "again; what it cannot resolve, `--retry-unknown` sends again "
                         "(perhaps a second time)")
        else:
            hints.append(f"{unknown} recipient(s) may or may not have received it, and "
                         f"{provider or 'the provider'} cannot be asked; `newsletter send "
                         f"--week {week} --retry-unknown` sends to them again (perhaps a "
                         "second time)")
    if counts.get(DeliveryStatus.FAILED):
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

    lines = []
    engine = connect(config.database_url)
    if send.canary_size:
        where = _canary_words(engine, send)
        lines.append(f"  canary    {send.canary_size:,} recipient(s), {where}")
    limits = Thresholds.of(config)
    if limits.off:
        return lines + ["  brake     off (brake_bounce_rate and brake_complaint_rate are 0)"]
    with engine.connect() as conn:
        found = figures.figures(conn, send.id, send.brake_since)
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


def _canary_words(engine: sa.Engine, send: sends.SendRecord) -> str:
    """Where the send's canary slice stands (``canary.phase``), in words."""
    left = 0
    if send.canary_until is None:
        with engine.connect() as conn:
            left = figures.count_canary_open(conn, send.id)
    stage = phase(send.canary_size, left, send.canary_until, utc_now())
    if stage is Phase.CANARY:
        return "being sent first"
    if send.canary_until is None:
        return "sent; the wait starts when the send goes on"
    if stage is Phase.WAITING and send.status == SendStatus.SENDING:
        return f"sent; waiting until {send.canary_until:%Y-%m-%d %H:%M:%S} UTC"
    return f"sent; the wait ended {send.canary_until:%Y-%m-%d %H:%M:%S} UTC"
