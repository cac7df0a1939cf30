"""A week's send as a whole: opened with its recipient snapshot (and its canary slice drawn),
bound to its content and to the provider and endpoint it started with, paused by the brake and
resumed, its canary wait started, finished, cancelled for good, or given back rows by request
(``--retry-failed``, ``--retry-unknown``).

A week has at most one *live* send; a cancelled one stays beside it as a record. A send's
recipients are frozen when it starts (the active subscribers at that moment); a send of
nobody is refused, so an empty list never uses up a week.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ...audience.model import SubscriberStatus
from ...clock import utc_now
from ...errors import NewsletterError
from ...store.db import begin_write
from ...store.tables import batches, deliveries, sends, subscribers
from ..canary import Canary, pick, seed_of
from ..states import DeliveryStatus, SendStatus


class SendError(NewsletterError):
    pass


@dataclass(frozen=True)
class SendRecord:
    id: int
    week: str
    content_hash: str
    status: SendStatus
    total: int
    created_at: datetime
    finished_at: datetime | None
    abort_reason: str | None
    provider: str = ""
    endpoint: str | None = None
    forced: str | None = None               # the check's verdict, sent past with --force
    canary_size: int = 0
    canary_until: datetime | None = None
    brake_since: datetime | None = None
    idempotent: bool = False                # its provider repeats a request without a double


# A row of ``sends``, read whole.
SendRow = sa.Row[*tuple[Any, ...]]


def _record(row: SendRow) -> SendRecord:
    return SendRecord(row.id, row.week, row.content_hash, SendStatus(row.status), row.total,
                      row.created_at, row.finished_at, row.abort_reason, row.provider,
                      row.endpoint, row.forced, row.canary_size, row.canary_until,
                      row.brake_since, row.idempotent)


def find_send(engine: sa.Engine, week: str) -> SendRecord | None:
    """The week's newest send (live or cancelled), or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(sends).where(sends.c.week == week)
                           .order_by(sends.c.id.desc()).limit(1)).first()
    return _record(row) if row else None


def sends_of_week(engine: sa.Engine, week: str) -> list[SendRecord]:
    """Every send of the week, oldest first."""
    with engine.connect() as conn:
        found = conn.execute(sa.select(sends).where(sends.c.week == week)
                             .order_by(sends.c.id)).all()
    return [_record(row) for row in found]


def get_send(engine: sa.Engine, send_id: int) -> SendRecord:
    with engine.connect() as conn:
        return read_send(conn, send_id)


def read_send(conn: sa.Connection, send_id: int) -> SendRecord:
    return _record(conn.execute(sa.select(sends).where(sends.c.id == send_id)).one())


def _live(conn: sa.Connection, week: str) -> SendRow | None:
    return conn.execute(sa.select(sends).where(sends.c.week == week,
                                               sends.c.status != SendStatus.CANCELLED)).first()


def open_send(engine: sa.Engine, week: str, content_hash: str, subject: str, provider: str,
              endpoint: str = "", *, canary: Canary | None = None, forced: str | None = None,
              idempotent: bool = False) -> tuple[SendRecord, bool]:
    """The week's live send, created with its recipient snapshot if there is none. Returns
    (send, created). A new send draws its ``canary`` slice and records what ``--force`` sent
    it past and whether its provider is ``idempotent``.

    The content must be what the send started with: a send that went out half with one text
    and half with another would be worse than either.
    """
    def attempt() -> tuple[SendRecord, bool]:
        return _open_send(engine, week, content_hash, subject, provider, endpoint,
                          canary=canary, forced=forced, idempotent=idempotent)

    try:
        return attempt()
    except sa.exc.IntegrityError:
        # Another sender created the week's send at the same moment (PostgreSQL; SQLite
        # serializes the writers): join it.
        return attempt()


def find_live(engine: sa.Engine, week: str) -> SendRecord | None:
    """The week's live (not cancelled) send, or None."""
    with engine.connect() as conn:
        row = _live(conn, week)
    return _record(row) if row else None


def _open_send(engine: sa.Engine, week: str, content_hash: str, subject: str, provider: str,
               endpoint: str, *, canary: Canary | None, forced: str | None,
               idempotent: bool) -> tuple[SendRecord, bool]:
    stamp = utc_now()
    with begin_write(engine) as conn:
        row = _live(conn, week)
        if row is not None:
            _check_same_content(row, week, content_hash)
            return _record(row), False
        inserted = conn.execute(
            sends.insert().values(week=week, content_hash=content_hash, subject=subject,
                                  provider=provider, endpoint=endpoint or None,
                                  status=SendStatus.SENDING, total=0, created_at=stamp,
                                  updated_at=stamp, forced=forced, idempotent=idempotent)
        ).inserted_primary_key
        assert inserted is not None  # an INSERT of one row always has its key
        send_id = inserted[0]
        snapshot = sa.select(
            sa.literal(send_id), subscribers.c.id, sa.literal(DeliveryStatus.PENDING.value),
            sa.literal(0), sa.literal(stamp, deliveries.c.updated_at.type),
        ).where(subscribers.c.status == SubscriberStatus.ACTIVE)
        conn.execute(deliveries.insert().from_select(
            ["send_id", "subscriber_id", "status", "attempts", "updated_at"], snapshot))
        total = conn.execute(sa.select(sa.func.count()).select_from(deliveries)
                             .where(deliveries.c.send_id == send_id)).scalar_one()
        if total == 0:
            # Raised inside the transaction: the send is not recorded, the week not used up.
            raise SendError(f"no active subscribers: nothing to send for {week}; add or "
                            "import subscribers first (`newsletter subscribers count`)")
        conn.execute(sends.update().where(sends.c.id == send_id).values(total=total))
        if canary is not None:
            _draw_canary(conn, send_id, content_hash, canary, total)
        row = conn.execute(sa.select(sends).where(sends.c.id == send_id)).one()
    return _record(row), True


def _draw_canary(conn: sa.Connection, send_id: int, content_hash: str, canary: Canary,
                 total: int) -> None:
    """Mark the send's canary slice (in the send's creating transaction)."""
    size = canary.size(total)
    if not size:
        return
    d = deliveries.c
    ids = conn.execute(sa.select(d.subscriber_id).where(d.send_id == send_id)).scalars().all()
    chosen = pick(ids, size, seed_of(send_id, content_hash))
    for start in range(0, len(chosen), 500):
        conn.execute(deliveries.update().where(d.send_id == send_id,
                                               d.subscriber_id.in_(chosen[start:start + 500]))
                     .values(canary=True))
    conn.execute(sends.update().where(sends.c.id == send_id).values(canary_size=size))


def _check_same_content(row: SendRow, week: str, content_hash: str) -> None:
    if row.content_hash == content_hash:
        return
    when = row.created_at.strftime("%Y-%m-%d %H:%M UTC")
    if row.status == SendStatus.DONE:
        raise SendError(f"the edition for {week} was sent on {when} with other content; a "
                        "week is sent once, so the changed edition is not sent")
    raise SendError(f"the edition for {week} started sending on {when} with other content; "
                    "revert the change to resume it (half a list must not get one text and "
                    f"half another), or end that send with `newsletter send --week {week} "
                    "--cancel`")


def check_binding(engine: sa.Engine, send: SendRecord, provider: str, endpoint: str) -> None:
    """Refuse to go on with a send through another provider or endpoint than it started with
    (the rows in flight there are unknown here, and a resend elsewhere would double them).
    A send from before endpoints were recorded takes on the current one."""
    if send.provider != provider or (send.endpoint and send.endpoint != endpoint):
        was = f"{send.provider} ({send.endpoint})" if send.endpoint else send.provider
        raise SendError(
            f"the send of {send.week} started with {was}, and this run is configured for "
            f"{provider} ({endpoint}); set provider and provider_base_url back to resume it, "
            f"or end it for good with `newsletter send --week {send.week} --cancel`")
    if not send.endpoint:
        with begin_write(engine) as conn:
            conn.execute(sends.update().where(sends.c.id == send.id).values(endpoint=endpoint))


def finish(engine: sa.Engine, send_id: int, *, aborted: str | None = None) -> None:
    """Mark the send done, or aborted with the reason; a cancelled send stays cancelled."""
    stamp = utc_now()
    values = ({"status": SendStatus.ABORTED, "abort_reason": aborted} if aborted
              else {"status": SendStatus.DONE, "finished_at": stamp, "abort_reason": None})
    with begin_write(engine) as conn:
        conn.execute(sends.update().where(sends.c.id == send_id,
                                          sends.c.status != SendStatus.CANCELLED)
                     .values(updated_at=stamp, **values))


def pause(engine: sa.Engine, send_id: int, reason: str) -> None:
    """The brake's verdict: a sending send becomes ``paused`` with the reason and figures."""
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


def start_wait(engine: sa.Engine, send_id: int, until: datetime) -> datetime:
    """The canary slice is out: its wait ends at ``until``, unless another sender stored an
    end first; the end stored."""
    with begin_write(engine) as conn:
        conn.execute(sends.update().where(sends.c.id == send_id,
                                          sends.c.canary_until.is_(None))
                     .values(canary_until=until, updated_at=utc_now()))
        stored: datetime = conn.execute(sa.select(sends.c.canary_until)
                                        .where(sends.c.id == send_id)).scalar_one()
    return stored


def mark_sending(conn: sa.Connection, send_id: int, stamp: datetime) -> None:
    """A sender started on it: an aborted send is being resumed."""
    conn.execute(sends.update().where(sends.c.id == send_id,
                                      sends.c.status.in_([SendStatus.SENDING,
                                                          SendStatus.ABORTED]))
                 .values(status=SendStatus.SENDING, abort_reason=None, updated_at=stamp))


def requeue(engine: sa.Engine, send_id: int, state: DeliveryStatus) -> int:
    """Put ``unknown`` or ``failed`` rows back to ``pending`` (by explicit request). An unknown
    row requeued leaves its batch: it goes out again under a new key."""
    d = deliveries.c
    stamp = utc_now()
    with begin_write(engine) as conn:
        keys = sa.select(d.batch_key).where(d.send_id == send_id, d.status == state,
                                            d.batch_key.is_not(None)).distinct()
        conn.execute(batches.update().where(batches.c.key.in_(keys))
                     .values(members=sa.null()))
        moved = conn.execute(
            deliveries.update().where(d.send_id == send_id, d.status == state)
            .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=None,
                    batch_key=None, updated_at=stamp)).rowcount
        if moved:
            conn.execute(sends.update().where(sends.c.id == send_id)
                         .values(status=SendStatus.SENDING, finished_at=None, updated_at=stamp))
    return moved


def cancel(conn: sa.Connection, send: SendRecord) -> None:
    """End ``send`` for good (the caller holds off every sender and recovered their rows):
    pending rows become ``cancelled``, unknown batches are no longer repeated."""
    stamp = utc_now()
    d = deliveries.c
    conn.execute(deliveries.update()
                 .where(d.send_id == send.id, d.status == DeliveryStatus.PENDING)
                 .values(status=DeliveryStatus.CANCELLED, next_attempt_at=None,
                         error_code="cancelled", updated_at=stamp,
                         error="not sent: the send was cancelled first"))
    conn.execute(batches.update().where(batches.c.send_id == send.id)
                 .values(members=sa.null()))
    conn.execute(sends.update().where(sends.c.id == send.id)
                 .values(status=SendStatus.CANCELLED, finished_at=stamp, updated_at=stamp,
                         abort_reason=f"cancelled on {stamp:%Y-%m-%d %H:%M} UTC"))


def cancellable(send: SendRecord | None, week: str) -> SendRecord:
    """The send ``--cancel`` may end, or a SendError saying why there is none."""
    if send is None or send.status == SendStatus.CANCELLED:
        raise SendError(f"no send of {week} to cancel")
    if send.status == SendStatus.DONE and send.total:
        when = f"{send.finished_at:%Y-%m-%d %H:%M} UTC" if send.finished_at else "earlier"
        raise SendError(f"the send of {week} finished on {when}; there is nothing to cancel "
                        f"(see `newsletter status --week {week}`)")
    return send
