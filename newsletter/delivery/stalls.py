"""Stalls: a send that is ``sending`` and has made no progress for ``stall_after`` seconds.

Progress is any row of the send changing (a claim, an answer recorded, a retry scheduled,
an unknown row resolved) or the send itself changing (a canary wait ending, a resume). A
send inside its canary wait is waiting by design, not stalled.

A stall says what the send waits for, in the order an operator would look: no sender at
all (nobody resumed it after a crash), batches with the provider (a provider that takes
requests and never answers), retries not yet due (a provider refusing for a while), unknown
rows waiting for the provider to show them, or a sender alive that does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..store.tables import deliveries, send_workers, sends
from .states import DeliveryStatus, SendStatus


@dataclass(frozen=True)
class Stall:
    send_id: int
    week: str
    since: datetime          # the last progress
    idle: timedelta          # how long ago that was
    waiting_for: str

    def words(self) -> str:
        return (f"no progress for {_duration(self.idle)} (since "
                f"{self.since:%Y-%m-%d %H:%M:%S} UTC); waiting for {self.waiting_for}")

    def line(self) -> str:
        return f"{self.week}: send {self.send_id} stalled, {self.words()}"


def find_stalls(engine: sa.Engine, *, stall_after: float, now: datetime) -> list[Stall]:
    """Every send that is stalled ``now``, oldest send first."""
    with engine.connect() as conn:
        return stalls_in(conn, stall_after=stall_after, now=now)


def stalls_in(conn: sa.Connection, *, stall_after: float, now: datetime) -> list[Stall]:
    s = sends.c
    open_sends = conn.execute(
        sa.select(s.id, s.week, s.updated_at, s.canary_until)
        .where(s.status == SendStatus.SENDING).order_by(s.id)).all()
    found = []
    for send in open_sends:
        if send.canary_until is not None and send.canary_until > now:
            continue
        stall = _stall_of(conn, send, stall_after=stall_after, now=now)
        if stall is not None:
            found.append(stall)
    return found


def _stall_of(conn: sa.Connection, send: sa.Row[Any, Any, Any, Any], *, stall_after: float,
              now: datetime) -> Stall | None:
    d = deliveries.c
    touched = conn.execute(sa.select(sa.func.max(d.updated_at))
                           .where(d.send_id == send.id)).scalar()
    since = max(t for t in (touched, send.updated_at) if t is not None)
    if now - since < timedelta(seconds=stall_after):
        return None
    return Stall(send.id, send.week, since, now - since,
                 _waiting_for(conn, send.id, send.week, stall_after=stall_after, now=now))


def _waiting_for(conn: sa.Connection, send_id: int, week: str, *, stall_after: float,
                 now: datetime) -> str:
    d, w = deliveries.c, send_workers.c
    counts: dict[str, int] = dict(conn.execute(sa.select(d.status, sa.func.count())
                                               .where(d.send_id == send_id)
                                               .group_by(d.status)).all())
    beating = conn.execute(sa.select(sa.func.count()).where(
        w.send_id == send_id,
        w.heartbeat_at >= now - timedelta(seconds=stall_after))).scalar_one()
    if not beating:
        return (f"a sender: none is running it (`newsletter send --week {week}` or the worker "
                "resumes it)")
    if counts.get(DeliveryStatus.IN_FLIGHT):
        return f"the provider to answer for {counts[DeliveryStatus.IN_FLIGHT]:,} recipient(s)"
    if counts.get(DeliveryStatus.PENDING):
        due = conn.execute(sa.select(sa.func.min(d.next_attempt_at)).where(
            d.send_id == send_id, d.status == DeliveryStatus.PENDING)).scalar()
        if due is not None and due > now:
            return (f"retries of {counts[DeliveryStatus.PENDING]:,} recipient(s), the next "
                    f"due at {due:%Y-%m-%d %H:%M:%S} UTC")
        return f"a sender that claims nothing, with {counts[DeliveryStatus.PENDING]:,} pending"
    if counts.get(DeliveryStatus.UNKNOWN):
        return (f"the provider to show what it accepted of {counts[DeliveryStatus.UNKNOWN]:,} "
                "unknown recipient(s)")
    return "a sender that does not finish it"


def _duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
