"""Reconciling: the send's unknown rows as the provider is asked about them, and its answers
written back, each batch in one transaction.

    unknown ──provider has it──> sent (its message id; ``reconciled`` = accepted)
            ──provider has none, settled──> pending, under a new key (``reconciled`` =
                                            not_accepted): sent again, safely; failed
                                            once its ``max_attempts`` are used up, so a
                                            provider that takes nothing and always times
                                            out is not asked and mailed for ever
            ──cannot tell──> unknown, with the reason in ``error``

Only rows still ``unknown`` change: another sender (or a repeat under the key) that got there
first keeps what it wrote. A row is never made ``sent`` without the provider's word, and a
failed search changes nothing but the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from itertools import groupby

import sqlalchemy as sa

from ...providers.base import Finding, UnknownBatch, UnknownRow, Verdict
from ...store.db import begin_write
from ...store.tables import batches, deliveries, events, sends, subscribers
from ..states import DeliveryStatus, SendStatus
from .queries import Repeats, repeatable


def unknown_batches(engine: sa.Engine, send_id: int, *, edition_key: str, subject: str,
                    repeats: Repeats | None, now: datetime) -> list[UnknownBatch]:
    """The send's unknown rows, by batch, the oldest batch first. With ``repeats`` (an
    idempotent provider), the rows it will repeat under their key are left to that."""
    d, b, s = deliveries.c, batches.c, subscribers.c
    query = (sa.select(d.batch_key, d.subscriber_id, s.email, b.created_at, b.members,
                       d.updated_at)
             .select_from(deliveries.outerjoin(batches, b.key == d.batch_key)
                          .outerjoin(subscribers, s.id == d.subscriber_id))
             .where(d.send_id == send_id, d.status == DeliveryStatus.UNKNOWN)
             .order_by(b.created_at, d.batch_key, d.subscriber_id))
    if repeats is not None:
        query = query.where(sa.not_(repeatable(send_id, repeats, now)))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    found = []
    for key, group in groupby(rows, key=lambda r: r.batch_key or ""):
        members = list(group)
        sent_at = members[0].created_at or min(r.updated_at for r in members)
        # The address the batch went to, where the batch still keeps it (the subscriber may
        # have changed theirs since); else the subscriber's own ("" once erased).
        sent_to = {m["id"]: m["email"] for m in members[0].members or ()}
        found.append(UnknownBatch(key, edition_key, subject, sent_at, tuple(
            UnknownRow(r.subscriber_id, sent_to.get(r.subscriber_id) or r.email or "")
            for r in members)))
    return found


def apply(engine: sa.Engine, send_id: int, findings: Sequence[Finding], *,
          now: datetime, max_attempts: int | None = None) -> Counter[Verdict]:
    """Write the provider's answers for rows still unknown; how many rows each verdict moved
    out of unknown (an undecided row stays, with its reason, and is not counted).

    A row found not accepted goes back to pending under no key, and the send is open again
    if it had finished, so a run (this one or the next) sends it; one that has had
    ``max_attempts`` already fails instead."""
    d = deliveries.c
    by_id = {f.subscriber_id: f for f in findings}
    moved: Counter[Verdict] = Counter()
    with begin_write(engine) as conn:
        attempts = dict(conn.execute(
            sa.select(d.subscriber_id, d.attempts).where(d.send_id == send_id,
                                                         d.subscriber_id.in_(list(by_id)),
                                                         d.status == DeliveryStatus.UNKNOWN)
            .with_for_update()).all())
        spent = {i for i, n in attempts.items()
                 if max_attempts is not None and n >= max_attempts}
        again = False
        for verdict in Verdict:
            mine = [i for i in attempts if by_id[i].verdict is verdict]
            if verdict is Verdict.NOT_ACCEPTED:
                _give_up(conn, send_id, [by_id[i] for i in mine if i in spent], attempts, now)
                mine = [i for i in mine if i not in spent]
                again = bool(mine)
            rows = [_values(by_id[i], now) for i in mine]
            if rows:
                conn.execute(_UPDATES[verdict].where(d.send_id == send_id), rows)
            n = sum(by_id[i].verdict is verdict for i in attempts)
            if n and verdict is not Verdict.UNDECIDED:
                moved[verdict] += n
        if again:
            conn.execute(sends.update()
                         .where(sends.c.id == send_id, sends.c.status == SendStatus.DONE)
                         .values(status=SendStatus.SENDING, finished_at=None, updated_at=now))
    return moved


def _give_up(conn: sa.Connection, send_id: int, findings: Sequence[Finding],
             attempts: dict[int, int], now: datetime) -> None:
    """Rows not accepted after their last attempt: failed, saying so."""
    if findings:
        conn.execute(_GIVE_UP.where(deliveries.c.send_id == send_id), [
            {"sid": f.subscriber_id, "stamp": now,
             "why": f"gave up after {attempts[f.subscriber_id]} attempts: "
                    f"{f.reason}"[:1000]} for f in findings])


def _values(finding: Finding, now: datetime) -> dict[str, object]:
    """The bound values of the verdict's update (an UPDATE takes no others)."""
    values: dict[str, object] = {"sid": finding.subscriber_id, "stamp": now}
    if finding.verdict is Verdict.ACCEPTED:
        values["mid"] = finding.message_id
    else:
        values["why"] = finding.reason[:1000]
    return values


def _update(**values: object) -> sa.Update:
    d = deliveries.c
    return (deliveries.update()
            .where(d.subscriber_id == sa.bindparam("sid"),
                   d.status == DeliveryStatus.UNKNOWN)
            .values(updated_at=sa.bindparam("stamp"), **values))


_UPDATES = {
    Verdict.ACCEPTED: _update(status=DeliveryStatus.SENT, message_id=sa.bindparam("mid"),
                              reconciled=Verdict.ACCEPTED.value, error_code=None, error=None,
                              next_attempt_at=None, claimed_by=None),
    Verdict.NOT_ACCEPTED: _update(status=DeliveryStatus.PENDING, batch_key=None,
                                  reconciled=Verdict.NOT_ACCEPTED.value, next_attempt_at=None,
                                  claimed_by=None, error_code="reconciled",
                                  error=sa.bindparam("why")),
    Verdict.UNDECIDED: _update(error_code="unresolved", error=sa.bindparam("why")),
}
_GIVE_UP = _update(status=DeliveryStatus.FAILED, batch_key=None,
                   reconciled=Verdict.NOT_ACCEPTED.value, next_attempt_at=None,
                   claimed_by=None, error_code="reconciled", error=sa.bindparam("why"))


def reconciled_counts(engine: sa.Engine, send_id: int) -> dict[str, int]:
    """How many of the send's rows the provider was asked about, by its answer."""
    d = deliveries.c
    with engine.connect() as conn:
        found = conn.execute(sa.select(d.reconciled, sa.func.count())
                             .where(d.send_id == send_id, d.reconciled.is_not(None))
                             .group_by(d.reconciled)).all()
    return {str(kind): n for kind, n in found}


# -- the event log, for providers that are not searched but report acceptance (SendGrid, SES)

# ``feedback.events.EventKind.ACCEPTED``, spelled here because feedback/ sits above delivery/
# (a test holds the two together).
ACCEPTED = "accepted"


def accepted_events(engine: sa.Engine, provider: str, send_id: int,
                    ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """Subscriber id -> (the provider's message id, the raw event) of the send's acceptance
    events among ``ids``."""
    e = events.c
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(e.subscriber_id, e.provider_message_id, e.raw)
            .where(e.provider == provider, e.send_id == send_id,
                   e.kind == ACCEPTED, e.subscriber_id.in_(list(ids)))).all()
    return {r.subscriber_id: (r.provider_message_id, r.raw) for r in found}


def heard_after(engine: sa.Engine, provider: str, send_id: int, sent_at: datetime) -> bool:
    """Whether an acceptance event came for a message of the send that was claimed after
    ``sent_at``: proof that the webhook reports acceptances, so that one missing for an
    earlier batch means it was never accepted."""
    e, d, b = events.c, deliveries.c, batches.c
    later = (sa.select(sa.literal(1))
             .select_from(events.join(deliveries, sa.and_(d.send_id == e.send_id,
                                                          d.subscriber_id == e.subscriber_id))
                          .join(batches, b.key == d.batch_key))
             .where(e.provider == provider, e.send_id == send_id,
                    e.kind == ACCEPTED, b.created_at > sent_at).limit(1))
    with engine.connect() as conn:
        return conn.execute(later).first() is not None


def heard_any(engine: sa.Engine, provider: str, send_id: int) -> bool:
    """Whether any acceptance event of the send has come from ``provider`` at all."""
    e = events.c
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.literal(1)).where(
            e.provider == provider, e.send_id == send_id, e.kind == ACCEPTED).limit(1)
        ).first() is not None
