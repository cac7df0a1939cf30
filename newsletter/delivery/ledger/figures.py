"""What the gate decides on, read from the ledger and the event log: the send's messages
sent and its subscribers hard-bounced and complained (the brake's figures), and how much of
its canary slice is still to send.

Counting the sent rows reads every one of them: a count before every batch would make a
send's checks grow with the square of its list. So one sender's ``SentTally`` counts again
only once another twentieth of the figure (at least a batch) has been claimed since. A figure
not counted again is low, so it can only make a rate look higher: a verdict reached on it is
confirmed on a fresh count (``GateFigures.exact`` says which one the gate has). Below twenty
batches sent it is counted before every batch, as exact as ever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ...store.tables import deliveries, events
from ..brake import Figures
from ..states import OPEN_STATES, DeliveryStatus


@dataclass(frozen=True)
class GateFigures:
    """The figures the gate judges a send by, as one sender read them."""

    brake: Figures | None    # None: not read (the brake is off)
    canary_open: int = 0     # the slice's rows still to send (read while it is being sent)
    exact: bool = True       # the sent figure was counted just now, not carried over


class SentTally:
    """One sender's sent figure, counted again only once enough has been claimed since."""

    def __init__(self, batch_size: int):
        self.batch_size = max(1, batch_size)
        self.value: int | None = None
        self.since: datetime | None = None
        self.claimed = 0  # rows this sender claimed since the last count

    def get(self, conn: sa.Connection, send_id: int, since: datetime | None, *,
            fresh: bool = False) -> int:
        value = self.value
        if (value is None or fresh or since != self.since
                or self.claimed >= max(self.batch_size, value // 20)):
            value = sent_count(conn, send_id, since)
            self.value, self.since, self.claimed = value, since, 0
        return value

    @property
    def exact(self) -> bool:
        return self.claimed == 0

    def count_claim(self, rows: int) -> None:
        self.claimed += rows


def read(conn: sa.Connection, send_id: int, *, brake_since: datetime | None, brake: bool,
         canary_open: bool, tally: SentTally, fresh: bool = False) -> GateFigures:
    """The gate's figures for the send: the brake's (when ``brake``, from ``brake_since`` on)
    and the slice's rows still open (when ``canary_open``)."""
    found = None
    if brake:
        sent = tally.get(conn, send_id, brake_since, fresh=fresh)
        found = figures(conn, send_id, brake_since, sent=sent)
    left = count_canary_open(conn, send_id) if canary_open else 0
    return GateFigures(found, left, exact=tally.exact)


def figures(conn: sa.Connection, send_id: int, since: datetime | None = None, *,
            sent: int | None = None) -> Figures:
    """The send's messages sent and subscribers hard-bounced and complained, counting only
    messages recorded as sent from ``since`` on (None: all); ``sent`` given is not counted."""
    if sent is None:
        sent = sent_count(conn, send_id, since)
    return Figures(sent, *(_reported(conn, send_id, kind, since)
                           for kind in ("bounced", "complained")))


def sent_count(conn: sa.Connection, send_id: int, since: datetime | None = None) -> int:
    d = deliveries.c
    sent = sa.select(sa.func.count()).select_from(deliveries).where(
        d.send_id == send_id, d.status == DeliveryStatus.SENT)
    if since is not None:
        sent = sent.where(d.updated_at >= since)
    return conn.execute(sent).scalar_one()


def count_canary_open(conn: sa.Connection, send_id: int) -> int:
    """The canary slice's rows still to send."""
    d = deliveries.c
    return conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
        d.send_id == send_id, d.canary.is_(True), d.status.in_(OPEN_STATES))).scalar_one()


def _reported(conn: sa.Connection, send_id: int, kind: str, since: datetime | None) -> int:
    d, e = deliveries.c, events.c
    query = sa.select(sa.func.count(sa.distinct(e.subscriber_id))).where(
        e.send_id == send_id, e.kind == kind, e.subscriber_id.is_not(None))
    if since is not None:
        query = query.select_from(events.join(deliveries, sa.and_(
            d.send_id == e.send_id, d.subscriber_id == e.subscriber_id))).where(
            d.status == DeliveryStatus.SENT, d.updated_at >= since)
    return conn.execute(query).scalar_one()
