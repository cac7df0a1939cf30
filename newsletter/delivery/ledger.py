"""The delivery ledger: one row per (send, subscriber), moved through its states in batches.

    pending ──claim──> in_flight ──record──> sent | failed | unknown
       ^                   │                         │
       └── retry (transient, attempts left) ─────────┘ (--retry-unknown / --retry-failed)
    in_flight left by a dead process ──> unknown      not active any more at claim ──> skipped

A send is one per ISO week and remembers the hash of its rendered content; its recipients are
frozen when it starts (a snapshot of the active subscribers). Claiming and recording are one
transaction per batch. On PostgreSQL, concurrent senders claim with ``FOR UPDATE SKIP
LOCKED`` and so share the work; on SQLite a second sender is refused while the first lives.
A row only becomes ``sent`` after the provider accepted it, so a crash can never lose a
recipient, and a ``sent`` row is never claimed again.
"""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..audience.recipient import Recipient
from ..clock import utc_now
from ..errors import NewsletterError
from ..store.db import begin_write
from ..store.tables import deliveries, send_workers, sends, subscribers

# A worker that has not written its heartbeat for this long is presumed dead.
STALE_AFTER = timedelta(seconds=60)
HEARTBEAT_EVERY = 5.0
OPEN_STATES = ("pending", "in_flight")


class SendError(NewsletterError):
    pass


class AlreadyInProgress(SendError):
    pass


@dataclass(frozen=True)
class SendRecord:
    id: int
    week: str
    content_hash: str
    status: str
    total: int
    created_at: datetime
    finished_at: datetime | None
    abort_reason: str | None


@dataclass(frozen=True)
class Claim:
    batch_key: str
    recipients: list[Recipient]
    skipped: int


@dataclass(frozen=True)
class Outcome:
    """What ``record`` stores for one recipient (a transport's SendResult, normalized)."""

    subscriber_id: int
    status: str              # sent | failed | retry | unknown
    message_id: str = ""
    code: str = ""
    reason: str = ""
    bad_address: bool = False
    retry_after: float | None = None


def _send_record(row: sa.Row) -> SendRecord:
    return SendRecord(row.id, row.week, row.content_hash, row.status, row.total,
                      row.created_at, row.finished_at, row.abort_reason)


def find_send(engine: sa.Engine, week: str) -> SendRecord | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(sends).where(sends.c.week == week)).first()
    return _send_record(row) if row else None


def open_send(engine: sa.Engine, week: str, content_hash: str, subject: str,
              provider: str) -> tuple[SendRecord, bool]:
    """The week's send, created with its recipient snapshot if new. Returns (send, created).

    The content must be what the send started with: a send that went out half with one text
    and half with another would be worse than either.
    """
    try:
        return _open_send(engine, week, content_hash, subject, provider)
    except sa.exc.IntegrityError:
        # Another sender created the week's send at the same moment (PostgreSQL; SQLite
        # serializes the writers): join it.
        return _open_send(engine, week, content_hash, subject, provider)


def _open_send(engine: sa.Engine, week: str, content_hash: str, subject: str,
               provider: str) -> tuple[SendRecord, bool]:
    stamp = utc_now()
    with begin_write(engine) as conn:
        row = conn.execute(sa.select(sends).where(sends.c.week == week)).first()
        if row is not None:
            _check_same_content(row, week, content_hash)
            return _send_record(row), False
        send_id = conn.execute(
            sends.insert().values(week=week, content_hash=content_hash, subject=subject,
                                  provider=provider, status="sending", total=0,
                                  created_at=stamp, updated_at=stamp)
        ).inserted_primary_key[0]
        snapshot = sa.select(
            sa.literal(send_id), subscribers.c.id, sa.literal("pending"), sa.literal(0),
            sa.literal(stamp, deliveries.c.updated_at.type),
        ).where(subscribers.c.status == "active")
        conn.execute(deliveries.insert().from_select(
            ["send_id", "subscriber_id", "status", "attempts", "updated_at"], snapshot))
        total = conn.execute(sa.select(sa.func.count()).select_from(deliveries)
                             .where(deliveries.c.send_id == send_id)).scalar_one()
        conn.execute(sends.update().where(sends.c.id == send_id).values(total=total))
        row = conn.execute(sa.select(sends).where(sends.c.id == send_id)).one()
    return _send_record(row), True


def _check_same_content(row: sa.Row, week: str, content_hash: str) -> None:
    if row.content_hash == content_hash:
        return
    when = row.created_at.strftime("%Y-%m-%d %H:%M UTC")
    if row.status == "done":
        raise SendError(f"the edition for {week} was sent on {when} with other content; a "
                        "week is sent once, so the changed edition is not sent")
    raise SendError(f"the edition for {week} started sending on {when} with other content; "
                    "revert the change to resume it (half a list must not get one text and "
                    "half another)")


# -- workers ---------------------------------------------------------------------------------

def register_worker(engine: sa.Engine, send_id: int) -> str:
    """Record this process as a sender; recover rows that dead senders left in flight.

    On SQLite only one sender may run: a live one makes this raise AlreadyInProgress.
    """
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    stamp = utc_now()
    with begin_write(engine) as conn:
        _forget_dead_workers(conn, stamp)
        if conn.dialect.name == "sqlite":
            live = conn.execute(sa.select(send_workers).where(
                send_workers.c.send_id == send_id)).first()
            if live is not None:
                since = live.started_at.strftime("%H:%M:%S UTC")
                raise AlreadyInProgress(
                    f"a send of this edition is already in progress (pid {live.pid} on "
                    f"{live.hostname}, since {since}); wait for it, or stop it first"
                )
        conn.execute(send_workers.insert().values(
            id=worker_id, send_id=send_id, hostname=socket.gethostname(), pid=os.getpid(),
            started_at=stamp, heartbeat_at=stamp))
        _recover_orphans(conn, send_id, stamp)
        conn.execute(sends.update().where(sends.c.id == send_id, sends.c.status != "done")
                     .values(status="sending", abort_reason=None, updated_at=stamp))
    return worker_id


def _forget_dead_workers(conn: sa.Connection, stamp: datetime) -> None:
    dead = [row.id for row in conn.execute(sa.select(send_workers))
            if row.heartbeat_at < stamp - STALE_AFTER or _gone(row.hostname, row.pid)]
    if dead:
        conn.execute(send_workers.delete().where(send_workers.c.id.in_(dead)))


def _gone(hostname: str, pid: int) -> bool:
    """A worker on this host whose process no longer exists is dead at once."""
    if hostname != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _recover_orphans(conn: sa.Connection, send_id: int, stamp: datetime) -> None:
    live = sa.select(send_workers.c.id)
    conn.execute(
        deliveries.update()
        .where(deliveries.c.send_id == send_id, deliveries.c.status == "in_flight",
               sa.or_(deliveries.c.claimed_by.is_(None), deliveries.c.claimed_by.not_in(live)))
        .values(status="unknown", claimed_by=None, updated_at=stamp, error_code="interrupted",
                error="the sending process stopped while this batch was with the provider")
    )


def recover(engine: sa.Engine, send_id: int) -> None:
    """Hand the rows of senders that died meanwhile over as ``unknown``."""
    stamp = utc_now()
    with begin_write(engine) as conn:
        _forget_dead_workers(conn, stamp)
        _recover_orphans(conn, send_id, stamp)


def heartbeat(engine: sa.Engine, worker_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(send_workers.update().where(send_workers.c.id == worker_id)
                     .values(heartbeat_at=utc_now()))


def unregister_worker(engine: sa.Engine, worker_id: str) -> None:
    with begin_write(engine) as conn:
        conn.execute(send_workers.delete().where(send_workers.c.id == worker_id))


# -- claiming --------------------------------------------------------------------------------

def claim(engine: sa.Engine, send_id: int, worker_id: str, limit: int) -> Claim | None:
    """Take up to ``limit`` due pending rows (lowest subscriber ids first) for this worker."""
    stamp = utc_now()
    d = deliveries.c
    with begin_write(engine) as conn:
        due = (sa.select(d.subscriber_id)
               .where(d.send_id == send_id, d.status == "pending",
                      sa.or_(d.next_attempt_at.is_(None), d.next_attempt_at <= stamp))
               .order_by(d.subscriber_id).limit(limit)
               .with_for_update(skip_locked=True))
        ids = list(conn.execute(due).scalars())
        if not ids:
            return None
        return _take(conn, send_id, worker_id, ids, uuid.uuid4().hex[:20], stamp,
                     new_attempt=True)


def _repeatable(max_attempts: int, stamp: datetime | None = None) -> sa.ColumnElement[bool]:
    """Unknown rows an idempotent provider may be asked about again: attempts left (and due)."""
    d = deliveries.c
    cond = sa.and_(d.status == "unknown", d.batch_key.is_not(None), d.attempts < max_attempts)
    if stamp is not None:
        cond = sa.and_(cond, sa.or_(d.next_attempt_at.is_(None), d.next_attempt_at <= stamp))
    return cond


def claim_unknown(engine: sa.Engine, send_id: int, worker_id: str, *,
                  max_attempts: int) -> Claim | None:
    """Take one whole batch left ``unknown`` to resend it under its original batch key.

    Only for providers with idempotency keys: the provider recognises the repeat and sends
    nothing twice. Each repeat counts as an attempt and waits its turn like a retry, so a
    provider whose answers keep getting lost is not asked forever.
    """
    stamp = utc_now()
    d = deliveries.c
    with begin_write(engine) as conn:
        key = conn.execute(
            sa.select(d.batch_key).where(d.send_id == send_id, _repeatable(max_attempts, stamp))
            .limit(1).with_for_update(skip_locked=True)
        ).scalar()
        if key is None:
            return None
        ids = list(conn.execute(
            sa.select(d.subscriber_id).where(d.send_id == send_id, d.status == "unknown",
                                             d.batch_key == key)
            .order_by(d.subscriber_id).with_for_update(skip_locked=True)).scalars())
        if not ids:
            return None
        # Everyone who was in the original request goes again, whatever their status now: the
        # repeat only completes a request the provider may already have carried out.
        return _take(conn, send_id, worker_id, ids, key, stamp, new_attempt=True,
                     active_only=False)


def _take(conn: sa.Connection, send_id: int, worker_id: str, ids: list[int], key: str,
          stamp: datetime, *, new_attempt: bool, active_only: bool = True) -> Claim:
    s = subscribers.c
    rows = {row.id: row for row in conn.execute(
        sa.select(s.id, s.email, s.name, s.attributes, s.status).where(s.id.in_(ids)))}
    keep = [i for i in ids if i in rows and (rows[i].status == "active" or not active_only)]
    skip = [i for i in ids if i not in keep]
    d = deliveries.c
    if skip:
        conn.execute(deliveries.update()
                     .where(d.send_id == send_id, d.subscriber_id.in_(skip))
                     .values(status="skipped", claimed_by=None, updated_at=stamp,
                             error_code="not_active",
                             error="no longer an active subscriber when the batch went out"))
    if keep:
        values = dict(status="in_flight", claimed_by=worker_id, batch_key=key, updated_at=stamp)
        if new_attempt:
            values["attempts"] = d.attempts + 1
        conn.execute(deliveries.update()
                     .where(d.send_id == send_id, d.subscriber_id.in_(keep)).values(**values))
    recipients = [Recipient(i, rows[i].email, rows[i].name or "", dict(rows[i].attributes or {}))
                  for i in keep]
    return Claim(batch_key=key, recipients=recipients, skipped=len(skip))


# -- recording -------------------------------------------------------------------------------

def record(engine: sa.Engine, send_id: int, worker_id: str, outcomes: Sequence[Outcome], *,
           max_attempts: int, retry_delay: float) -> None:
    """Store one batch's outcomes in one transaction."""
    from ..audience.subscribers import mark_bounced_ids

    stamp = utc_now()
    d = deliveries.c
    with begin_write(engine) as conn:
        attempts = dict(conn.execute(
            sa.select(d.subscriber_id, d.attempts).where(
                d.send_id == send_id, d.subscriber_id.in_([o.subscriber_id for o in outcomes]))
        ).all())
        params = [_row_values(o, attempts.get(o.subscriber_id, 1), max_attempts, retry_delay,
                              stamp) for o in outcomes]
        stmt = (deliveries.update()
                .where(d.send_id == send_id, d.subscriber_id == sa.bindparam("b_id"),
                       d.claimed_by == worker_id, d.status == "in_flight")
                .values(status=sa.bindparam("b_status"), message_id=sa.bindparam("b_mid"),
                        error_code=sa.bindparam("b_code"), error=sa.bindparam("b_error"),
                        next_attempt_at=sa.bindparam("b_next"), updated_at=stamp,
                        claimed_by=None))
        if params:
            conn.execute(stmt, params)
        bad = [o.subscriber_id for o in outcomes if o.bad_address]
        if bad:
            mark_bounced_ids(conn, bad, reason="the provider reports the address as inactive")


def _row_values(o: Outcome, attempts: int, max_attempts: int, retry_delay: float,
                stamp: datetime) -> dict:
    status, next_at, error = o.status, None, o.reason or None
    if status == "unknown":
        # Asked again only by an idempotent provider (claim_unknown), and not at once.
        next_at = stamp + timedelta(seconds=retry_delay * 2 ** (attempts - 1))
    if status == "retry":
        if attempts >= max_attempts:
            status, error = "failed", f"gave up after {attempts} attempts: {o.reason}"
        else:
            status = "pending"
            delay = retry_delay * 2 ** (attempts - 1) * (0.5 + random.random() / 2)
            next_at = stamp + timedelta(seconds=max(delay, o.retry_after or 0.0))
    return {"b_id": o.subscriber_id, "b_status": status, "b_mid": o.message_id or None,
            "b_code": o.code or None, "b_error": error, "b_next": next_at}


# -- after the fact --------------------------------------------------------------------------

def counts(engine: sa.Engine, send_id: int) -> dict[str, int]:
    d = deliveries.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(d.status, sa.func.count()).where(d.send_id == send_id)
                            .group_by(d.status)).all()
    return {status: n for status, n in rows}


def _open(repeat_unknown_below: int | None) -> sa.ColumnElement[bool]:
    """Rows with work left: pending or in flight, and (for an idempotent provider) unknown
    rows with attempts left."""
    cond = deliveries.c.status.in_(OPEN_STATES)
    if repeat_unknown_below is not None:
        cond = sa.or_(cond, _repeatable(repeat_unknown_below))
    return cond


def next_due(engine: sa.Engine, send_id: int, *,
             repeat_unknown_below: int | None = None) -> datetime | None:
    """When the next waiting retry falls due (None if nothing is waiting)."""
    d = deliveries.c
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.min(d.next_attempt_at)).where(
            d.send_id == send_id, d.status != "in_flight",
            _open(repeat_unknown_below))).scalar()


def open_rows(engine: sa.Engine, send_id: int, *,
              repeat_unknown_below: int | None = None) -> int:
    d = deliveries.c
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
            d.send_id == send_id, _open(repeat_unknown_below))).scalar_one()


def finish(engine: sa.Engine, send_id: int, *, aborted: str | None = None) -> None:
    stamp = utc_now()
    values = ({"status": "aborted", "abort_reason": aborted} if aborted
              else {"status": "done", "finished_at": stamp, "abort_reason": None})
    with begin_write(engine) as conn:
        conn.execute(sends.update().where(sends.c.id == send_id).values(updated_at=stamp,
                                                                         **values))


def requeue(engine: sa.Engine, send_id: int, state: str) -> int:
    """Put ``unknown`` or ``failed`` rows back to ``pending`` (by explicit request)."""
    d = deliveries.c
    stamp = utc_now()
    with begin_write(engine) as conn:
        moved = conn.execute(
            deliveries.update().where(d.send_id == send_id, d.status == state)
            .values(status="pending", attempts=0, next_attempt_at=None, batch_key=None,
                    updated_at=stamp)).rowcount
        if moved:
            conn.execute(sends.update().where(sends.c.id == send_id)
                         .values(status="sending", finished_at=None, updated_at=stamp))
    return moved


def top_errors(engine: sa.Engine, send_id: int, limit: int = 5) -> list[tuple[str, str, int]]:
    d = deliveries.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(d.status, d.error, sa.func.count().label("n"))
            .where(d.send_id == send_id, d.error.is_not(None))
            .group_by(d.status, d.error).order_by(sa.desc("n")).limit(limit)).all()
    return [(r.status, r.error, r.n) for r in rows]


def sent_span(engine: sa.Engine, send_id: int) -> tuple[datetime | None, datetime | None]:
    """The first and last time a row of this send was recorded as sent."""
    d = deliveries.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(sa.func.min(d.updated_at), sa.func.max(d.updated_at))
                           .where(d.send_id == send_id, d.status == "sent")).one()
    return row[0], row[1]
