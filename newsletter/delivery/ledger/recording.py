"""Recording: one batch's outcomes written to the ledger in one transaction.

    sent, failed              final
    retry                     pending again after ``retry_delay`` (doubling, with jitter, at
                              least what the provider asked), under a new key next time;
                              failed once ``max_attempts`` are used up
    unknown                   unknown, and due again after ``retry_delay`` (doubling): an
                              idempotent provider's batch is repeated under its key
    untried                   pending, due at once, the attempt not counted: the send
                              stopped before this message was handed over

On a repeat (the first request may have been accepted) only an answer is conclusive: a
retry or untried outcome leaves the row unknown under its key, never pending under a new one.

The provider's answer must never be lost: a row is written whether it is still this
sender's (in flight) or was meanwhile handed over as ``unknown`` by a sender that believed
this one dead. A batch that needs no repeat any more loses its stored members.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ...clock import utc_now
from ...providers.base import Outcome, OutcomeKind
from ...store.db import begin_write
from ...store.tables import batches, deliveries
from ..states import DeliveryStatus
from .claiming import Claim
from .queries import Repeats

# No retry waits longer than this, whatever retry_delay and the doubling make of it.
MAX_WAIT = timedelta(days=1)


def record(engine: sa.Engine, send_id: int, worker_id: str, claim: Claim,
           outcomes: Sequence[Outcome], *, max_attempts: int, retry_delay: float,
           repeats: Repeats | None = None) -> Counter[DeliveryStatus]:
    """Store one batch's outcomes; return how many rows reached each *final* state (a row
    unknown but to be repeated, or pending again, is not final)."""
    from ...audience.changes import bounce
    from ...audience.history import ChangeMethod

    stamp = utc_now()
    d = deliveries.c
    ids = [o.subscriber_id for o in outcomes]
    with begin_write(engine) as conn:
        attempts = dict(conn.execute(sa.select(d.subscriber_id, d.attempts).where(
            d.send_id == send_id, d.subscriber_id.in_(ids))).all())
        params = [_row_values(o, attempts.get(o.subscriber_id, 1), claim, max_attempts,
                              retry_delay, stamp) for o in outcomes]
        ours = sa.or_(
            sa.and_(d.status == DeliveryStatus.IN_FLIGHT, d.claimed_by == worker_id),
            sa.and_(d.status == DeliveryStatus.UNKNOWN, d.claimed_by.is_(None),
                    d.error_code == "interrupted"))
        stmt = (deliveries.update()
                .where(d.send_id == send_id, d.subscriber_id == sa.bindparam("b_id"),
                       d.batch_key == claim.batch_key, ours)
                .values(status=sa.bindparam("b_status"), message_id=sa.bindparam("b_mid"),
                        error_code=sa.bindparam("b_code"), error=sa.bindparam("b_error"),
                        next_attempt_at=sa.bindparam("b_next"),
                        attempts=sa.bindparam("b_attempts"), batch_key=sa.bindparam("b_key"),
                        updated_at=stamp, claimed_by=None))
        if params:
            conn.execute(stmt, params)
        bad = [o.subscriber_id for o in outcomes if o.bad_address]
        if bad:
            bounce(conn, bad, reason="the provider reports the address as inactive",
                   method=ChangeMethod.SEND)
        _settle(conn, send_id, claim.batch_key, repeats)
    final = Counter(p["b_status"] for p in params
                    if _final(p["b_status"], p["b_attempts"], repeats))
    return Counter({DeliveryStatus(status): n for status, n in final.items()})


def _row_values(o: Outcome, attempts: int, claim: Claim, max_attempts: int,
                retry_delay: float, stamp: datetime) -> dict[str, Any]:
    kind = o.kind
    status: DeliveryStatus
    next_at: datetime | None = None
    error = o.reason or None
    key: str | None = claim.batch_key
    if kind in (OutcomeKind.SENT, OutcomeKind.FAILED):
        status = DeliveryStatus(kind)  # the row's state is the answer itself
    elif claim.repeat or kind == OutcomeKind.UNKNOWN:
        status = DeliveryStatus.UNKNOWN
        if kind == OutcomeKind.UNTRIED:
            attempts -= 1
        else:
            wait = max(retry_delay * 2.0 ** min(attempts - 1, 60), o.retry_after or 0.0)
            next_at = _after(stamp, wait)
    elif kind == OutcomeKind.UNTRIED:  # pending again under a new key
        status, attempts, key = DeliveryStatus.PENDING, attempts - 1, None
    elif attempts >= max_attempts:  # a retry, out of attempts
        status, error = DeliveryStatus.FAILED, f"gave up after {attempts} attempts: {o.reason}"
    else:
        status, key = DeliveryStatus.PENDING, None
        delay = retry_delay * 2.0 ** min(attempts - 1, 60) * (0.5 + random.random() / 2)
        next_at = _after(stamp, max(delay, o.retry_after or 0.0))
    return {"b_id": o.subscriber_id, "b_status": str(status), "b_mid": o.message_id or None,
            "b_code": o.code or None, "b_error": error, "b_next": next_at,
            "b_attempts": max(attempts, 0), "b_key": key}


def _after(stamp: datetime, seconds: float) -> datetime:
    """``stamp`` plus a wait, bounded: an infinite or absurd retry_delay waits MAX_WAIT."""
    limit = MAX_WAIT.total_seconds()
    if not math.isfinite(seconds) or seconds > limit:
        seconds = limit
    return stamp + timedelta(seconds=max(seconds, 0.0))


def _final(status: str, attempts: int, repeats: Repeats | None) -> bool:
    if status == DeliveryStatus.UNKNOWN:
        return repeats is None or attempts >= repeats.max_attempts
    return status in (DeliveryStatus.SENT, DeliveryStatus.FAILED)


def _settle(conn: sa.Connection, send_id: int, key: str, repeats: Repeats | None) -> None:
    """Forget what the batch carried once no repeat of it can follow."""
    d = deliveries.c
    cond = [d.send_id == send_id, d.batch_key == key,
            d.status.in_([DeliveryStatus.UNKNOWN, DeliveryStatus.IN_FLIGHT])]
    if repeats is not None:
        cond.append(d.attempts < repeats.max_attempts)
    waiting = None
    if repeats is not None:
        waiting = conn.execute(sa.select(d.subscriber_id).where(*cond).limit(1)).first()
    if waiting is None:
        conn.execute(batches.update().where(batches.c.key == key, batches.c.members.is_not(None))
                     .values(members=sa.null()))
