"""Between batches: may a new one start? The canary's phases and the brake, from the ledger.

The send loop asks ``Gate.check`` before it claims each batch. In order:

1. a send another sender paused stays paused: this one stops too;
2. the brake (``brake.judge``) on this send's hard bounces and complaints from the event log
   (since ``--resume-paused``, if it was paused before): tripped, the send becomes ``paused``
   with the reason and the figures, and no new batch starts;
3. the canary (``canary.phase``): while the slice is being sent, only its rows are claimed;
   once none is left, the wait starts (its end is stored once, whichever sender gets there
   first); until it ends this run stops, ``waiting``, and a later run (or the worker, by
   itself) carries on; after it, everyone left is sent.

``mark_canary`` draws the slice when the send starts; ``resume_paused`` is
``--resume-paused``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..clock import utc_now
from ..store.db import begin_write
from ..store.tables import deliveries, events, sends
from .brake import Figures, Thresholds, judge
from .canary import Canary, Phase, phase, pick, seed_of
from .loop import StopReason
from .states import OPEN_STATES, DeliveryStatus, SendStatus

log = logging.getLogger("newsletter.send")


def mark_canary(conn: sa.Connection, send_id: int, content_hash: str, canary: Canary,
                total: int) -> int:
    """Draw the send's canary slice (in the send's creating transaction); its size."""
    size = canary.size(total)
    if not size:
        return 0
    d = deliveries.c
    ids = conn.execute(sa.select(d.subscriber_id).where(d.send_id == send_id)).scalars().all()
    chosen = pick(ids, size, seed_of(send_id, content_hash))
    for start in range(0, len(chosen), 500):
        conn.execute(deliveries.update().where(d.send_id == send_id,
                                               d.subscriber_id.in_(chosen[start:start + 500]))
                     .values(canary=True))
    conn.execute(sends.update().where(sends.c.id == send_id).values(canary_size=size))
    return size


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


class SentTally:
    """The sent figure the brake divides by, counted again only once another twentieth of it
    (at least a batch) has been claimed. A count reads every sent row: one before every batch
    would make a send's checks grow with the square of its list. A figure not counted again
    is low, so it can only make a rate look higher: a verdict is confirmed on a fresh count.
    Below twenty batches sent it is counted before every batch, as exact as ever."""

    def __init__(self, batch_size: int):
        self.batch_size = max(1, batch_size)
        self.value: int | None = None
        self.since: datetime | None = None
        self.claimed = 0  # at most, since the last count

    def get(self, conn: sa.Connection, send_id: int, since: datetime | None, *,
            fresh: bool = False) -> int:
        due = (fresh or self.value is None or since != self.since
               or self.claimed >= max(self.batch_size, self.value // 20))
        if due:
            self.value, self.since, self.claimed = sent_count(conn, send_id, since), since, 0
        return self.value

    @property
    def exact(self) -> bool:
        return self.claimed == 0

    def claim(self) -> None:
        self.claimed += self.batch_size


def _reported(conn: sa.Connection, send_id: int, kind: str, since: datetime | None) -> int:
    d, e = deliveries.c, events.c
    query = sa.select(sa.func.count(sa.distinct(e.subscriber_id))).where(
        e.send_id == send_id, e.kind == kind, e.subscriber_id.is_not(None))
    if since is not None:
        query = query.select_from(events.join(deliveries, sa.and_(
            d.send_id == e.send_id, d.subscriber_id == e.subscriber_id))).where(
            d.status == DeliveryStatus.SENT, d.updated_at >= since)
    return conn.execute(query).scalar_one()


def pause(engine: sa.Engine, send_id: int, reason: str) -> None:
    with begin_write(engine) as conn:
        conn.execute(sends.update().where(sends.c.id == send_id,
                                          sends.c.status == SendStatus.SENDING)
                     .values(status=SendStatus.PAUSED, abort_reason=reason,
                             updated_at=utc_now()))


def resume_paused(engine: sa.Engine, send_id: int, now: datetime | None = None) -> None:
    """``--resume-paused``: sending again; the brake judges only what is sent from now on,
    and a canary wait still running is over (the operator has looked)."""
    now = now or utc_now()
    s = sends.c
    with begin_write(engine) as conn:
        row = conn.execute(sa.select(s.canary_size, s.canary_until)
                           .where(s.id == send_id, s.status == SendStatus.PAUSED)).first()
        if row is None:
            return
        until = row.canary_until
        if row.canary_size and (until is None or until > now):
            until = now
        conn.execute(sends.update().where(s.id == send_id)
                     .values(status=SendStatus.SENDING, abort_reason=None, brake_since=now,
                             canary_until=until, updated_at=now))


class Gate:
    """The check the loop makes before each claim, for one send through one ``book`` (whose
    ``canary_only`` it sets)."""

    def __init__(self, engine: sa.Engine, send_id: int, book, *, limits: Thresholds,
                 wait: float, clock: Callable[[], datetime] = utc_now):
        self.engine = engine
        self.send_id = send_id
        self.book = book
        self.limits = limits
        self.wait = timedelta(seconds=wait)
        self.clock = clock
        self.tally = SentTally(book.batch_size)

    def check(self) -> StopReason | None:
        now = self.clock()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sends).where(sends.c.id == self.send_id)).one()
            if row.status == SendStatus.PAUSED:
                return StopReason("paused", row.abort_reason or "paused")
            verdict = self._brake(conn, row)
            left = self._canary_open(conn) if row.canary_size and row.canary_until is None \
                else 0
        self.tally.claim()  # a batch is claimed after every check that lets it
        if verdict is not None:
            pause(self.engine, self.send_id, verdict)
            log.warning("%s: paused by %s", row.week, verdict)
            return StopReason("paused", verdict)
        stage = phase(row.canary_size, left, row.canary_until, now)
        self.book.canary_only = stage is Phase.CANARY
        if stage is not Phase.WAITING:
            return None
        until = row.canary_until or self._start_wait(now + self.wait)
        if now >= until:
            return None
        self.book.canary_only = True
        return StopReason("waiting", f"canary sent to {row.canary_size:,}; waiting for "
                          f"bounces and complaints until {until:%Y-%m-%d %H:%M:%S} UTC",
                          until=until)

    def _brake(self, conn: sa.Connection, row) -> str | None:
        if self.limits.off:
            return None
        verdict = self._judge(conn, row, fresh=False)
        if verdict is not None and not self.tally.exact:
            verdict = self._judge(conn, row, fresh=True)  # confirmed on a fresh count
        return verdict

    def _judge(self, conn: sa.Connection, row, *, fresh: bool) -> str | None:
        sent = self.tally.get(conn, self.send_id, row.brake_since, fresh=fresh)
        found = figures(conn, self.send_id, row.brake_since, sent=sent)
        return judge(found, self.limits, canary_size=row.canary_size)

    def _canary_open(self, conn: sa.Connection) -> int:
        d = deliveries.c
        return conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
            d.send_id == self.send_id, d.canary.is_(True), d.status.in_(OPEN_STATES))
        ).scalar_one()

    def _start_wait(self, until: datetime) -> datetime:
        """The wait's end: ``until``, unless another sender stored one first."""
        with begin_write(self.engine) as conn:
            conn.execute(sends.update().where(sends.c.id == self.send_id,
                                              sends.c.canary_until.is_(None))
                         .values(canary_until=until, updated_at=utc_now()))
            return conn.execute(sa.select(sends.c.canary_until)
                                .where(sends.c.id == self.send_id)).scalar_one()
