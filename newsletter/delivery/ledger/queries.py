"""Reading the ledger: counts per state, the work left, when it falls due, the errors.

"Work left" is every pending or in-flight row and, with a provider that has idempotency keys,
every *repeatable* unknown row: one in a batch whose members are still kept, with attempts
left, first sent recently enough that the provider still remembers its key. Any other unknown
row is final: reported, and resent only on request (``--retry-unknown``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from ...clock import utc_now
from ...store.tables import batches, deliveries
from ..states import OPEN_STATES, DeliveryStatus

# Taken off a provider's idempotency window: the key's clock starts at its first request,
# which can come a while after the batch was claimed, and clocks differ.
WINDOW_MARGIN = timedelta(hours=1)


@dataclass(frozen=True)
class Repeats:
    """When an unknown batch may be repeated under its key (idempotent providers only)."""

    max_attempts: int
    window: timedelta | None = None   # how long the provider remembers a key; None: for ever

    def cutoff(self, stamp: datetime) -> datetime | None:
        """Batches first sent before this are past the window."""
        if self.window is None:
            return None
        return stamp - max(self.window - WINDOW_MARGIN, timedelta(0))


def repeatable_keys(send_id: int, repeats: Repeats, stamp: datetime) -> sa.Select[tuple[str]]:
    """The keys of the send's batches whose repeat is still safe."""
    b = batches.c
    # members are only ever written as SQL NULL (sa.null()), never as a JSON null.
    query = sa.select(b.key).where(b.send_id == send_id, b.members.is_not(None))
    cutoff = repeats.cutoff(stamp)
    if cutoff is not None:
        query = query.where(b.created_at >= cutoff)
    return query


def repeatable(send_id: int, repeats: Repeats, stamp: datetime, *,
               due: bool = False) -> sa.ColumnElement[bool]:
    d = deliveries.c
    cond = sa.and_(d.status == DeliveryStatus.UNKNOWN, d.attempts < repeats.max_attempts,
                   d.batch_key.in_(repeatable_keys(send_id, repeats, stamp)))
    if due:
        cond = sa.and_(cond, sa.or_(d.next_attempt_at.is_(None), d.next_attempt_at <= stamp))
    return cond


def _open(send_id: int, repeats: Repeats | None, stamp: datetime) -> sa.ColumnElement[bool]:
    cond: sa.ColumnElement[bool] = deliveries.c.status.in_(OPEN_STATES)
    if repeats is not None:
        cond = sa.or_(cond, repeatable(send_id, repeats, stamp))
    return cond


def counts(engine: sa.Engine, send_id: int) -> dict[DeliveryStatus, int]:
    """How many of the send's rows are in each state (a state with none left out)."""
    d = deliveries.c
    with engine.connect() as conn:
        found = conn.execute(sa.select(d.status, sa.func.count()).where(d.send_id == send_id)
                             .group_by(d.status)).all()
    return {DeliveryStatus(status): n for status, n in found}


def open_rows(engine: sa.Engine, send_id: int, repeats: Repeats | None = None) -> int:
    d = deliveries.c
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
            d.send_id == send_id, _open(send_id, repeats, utc_now()))).scalar_one()


def next_due(engine: sa.Engine, send_id: int, repeats: Repeats | None = None, *,
             canary_only: bool = False) -> datetime | None:
    """When the next waiting retry or repeat falls due (None if nothing is waiting);
    ``canary_only``: among the canary slice's rows."""
    d = deliveries.c
    query = sa.select(sa.func.min(d.next_attempt_at)).where(
        d.send_id == send_id, d.status != DeliveryStatus.IN_FLIGHT,
        _open(send_id, repeats, utc_now()))
    if canary_only:
        query = query.where(d.canary.is_(True))
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def top_errors(engine: sa.Engine, send_id: int,
               limit: int = 5) -> list[tuple[DeliveryStatus, str, int]]:
    """The send's most common errors: (state, error, how many rows), the most common first."""
    d = deliveries.c
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(d.status, d.error, sa.func.count().label("n"))
            .where(d.send_id == send_id, d.error.is_not(None))
            .group_by(d.status, d.error).order_by(sa.desc("n")).limit(limit)).all()
    return [(DeliveryStatus(r.status), r.error, r.n) for r in found]


def sent_span(engine: sa.Engine, send_id: int) -> tuple[datetime | None, datetime | None]:
    """The first and last time a row of this send was recorded as sent."""
    d = deliveries.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(sa.func.min(d.updated_at), sa.func.max(d.updated_at))
                           .where(d.send_id == send_id,
                                  d.status == DeliveryStatus.SENT)).one()
    return row[0], row[1]
