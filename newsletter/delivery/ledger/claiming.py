"""Claiming: taking a batch of the ledger's rows for one request, in one transaction.

A fresh batch is the lowest due pending rows, under a new key; a ``batches`` row records the
key, when it was first sent and (for providers with idempotency keys) what it carries. A
repeat is one unknown batch taken whole under its old key with exactly the recipients it
carried then, as they were then (someone unsubscribed or renamed meanwhile included): the
provider recognises the request only if it is the same. (Erasing someone it carried drops the
stored members, ``audience.erasure``: the batch is then a plain unknown.) Claiming a repeat
locks its ``batches`` row, so two senders can never split one key's rows between them.

On PostgreSQL concurrent senders claim with ``FOR UPDATE SKIP LOCKED`` and so share the work.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

import sqlalchemy as sa

from ...audience.model import SubscriberStatus
from ...audience.recipient import Recipient
from ...clock import utc_now
from ...store.db import begin_write
from ...store.tables import batches, deliveries, subscribers
from ..states import DeliveryStatus
from .queries import Repeats, repeatable


@dataclass(frozen=True)
class Claim:
    batch_key: str
    recipients: list[Recipient]
    skipped: int = 0
    repeat: bool = False   # a repeat of a batch whose first request may have been accepted


def claim(engine: sa.Engine, send_id: int, worker_id: str, limit: int, *,
          keep_members: bool = True, canary_only: bool = False) -> Claim | None:
    """Take up to ``limit`` due pending rows (lowest subscriber ids first) for this worker.

    Those no longer active are marked skipped (counted in the claim) instead. ``keep_members``
    stores what the batch carries, for a repeat under its key; ``canary_only`` takes only
    rows of the canary slice.
    """
    stamp = utc_now()
    d = deliveries.c
    with begin_write(engine) as conn:
        due = (sa.select(d.subscriber_id)
               .where(d.send_id == send_id, d.status == DeliveryStatus.PENDING,
                      sa.or_(d.next_attempt_at.is_(None), d.next_attempt_at <= stamp))
               .order_by(d.subscriber_id).limit(limit)
               .with_for_update(skip_locked=True))
        if canary_only:
            due = due.where(d.canary.is_(True))
        ids = list(conn.execute(due).scalars())
        if not ids:
            return None
        key = uuid.uuid4().hex[:20]
        s = subscribers.c
        found = {row.id: row for row in conn.execute(
            sa.select(s.id, s.email, s.name, s.attributes, s.status).where(s.id.in_(ids)))}
        keep = [i for i in ids if i in found and found[i].status == SubscriberStatus.ACTIVE]
        skip = [i for i in ids if i not in keep]
        if skip:
            conn.execute(deliveries.update()
                         .where(d.send_id == send_id, d.subscriber_id.in_(skip))
                         .values(status=DeliveryStatus.SKIPPED, claimed_by=None,
                                 updated_at=stamp, error_code="not_active",
                                 error="no longer an active subscriber when the batch went out"))
        recipients = [Recipient(i, found[i].email, found[i].name or "",
                                dict(found[i].attributes or {})) for i in keep]
        if recipients:
            _take(conn, send_id, worker_id, keep, key, stamp)
            conn.execute(batches.insert().values(
                key=key, send_id=send_id, created_at=stamp,
                members=_members(recipients) if keep_members else sa.null()))
        return Claim(key, recipients, len(skip))


def claim_unknown(engine: sa.Engine, send_id: int, worker_id: str, *, max_attempts: int,
                  window: timedelta | None = None) -> Claim | None:
    """Take one whole unknown batch, due and still repeatable, to send again under its key.

    Only for providers with idempotency keys: the provider recognises the repeat and sends
    nothing twice. Each repeat counts as an attempt and waits its turn like a retry, so a
    provider whose answers keep getting lost is not asked forever.
    """
    stamp = utc_now()
    repeats = Repeats(max_attempts, window)
    d, b = deliveries.c, batches.c
    with begin_write(engine) as conn:
        due_key = sa.select(d.batch_key).where(d.send_id == send_id,
                                               repeatable(send_id, repeats, stamp, due=True))
        # The batch row is the key's lock: whoever holds it takes all of the key's rows.
        row = conn.execute(
            sa.select(b.key, b.members).where(b.key.in_(due_key), b.members.is_not(None))
            .order_by(b.created_at).limit(1)
            .with_for_update(skip_locked=True, of=batches)).first()
        if row is None:
            return None
        ids = set(conn.execute(
            sa.select(d.subscriber_id).where(d.send_id == send_id, d.batch_key == row.key,
                                             d.status == DeliveryStatus.UNKNOWN)
            .with_for_update()).scalars())
        # Everyone who was in the request goes again, whatever their status now: the repeat
        # only completes a request the provider may already have carried out.
        members: list[Member] = row.members
        recipients = [Recipient(m["id"], m["email"], m["name"], m["attributes"])
                      for m in members if m["id"] in ids]
        if not recipients:
            return None
        _take(conn, send_id, worker_id, [r.id for r in recipients], row.key, stamp)
        return Claim(row.key, recipients, repeat=True)


def _take(conn: sa.Connection, send_id: int, worker_id: str, ids: list[int], key: str,
          stamp: datetime) -> None:
    d = deliveries.c
    conn.execute(deliveries.update()
                 .where(d.send_id == send_id, d.subscriber_id.in_(ids))
                 .values(status=DeliveryStatus.IN_FLIGHT, claimed_by=worker_id, batch_key=key,
                         attempts=d.attempts + 1, updated_at=stamp))


class Member(TypedDict):
    """One recipient of a batch as the batch carried it, stored (JSON) for a repeat."""

    id: int
    email: str
    name: str
    attributes: dict[str, Any]


def _members(recipients: list[Recipient]) -> list[Member]:
    return [{"id": r.id, "email": r.email, "name": r.name, "attributes": dict(r.attributes)}
            for r in recipients]
