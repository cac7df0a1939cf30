"""What stored events do to their subscribers, done through the audience package only.

    bounced       suppressed at once (status ``bounced``)
    complained    suppressed at once (status ``complained``)
    unsubscribed  unsubscribed as the web unsubscribe does, the method being ``mailto`` or the
                  provider's name
    deferred      counted; ``soft_bounce_limit`` messages in a row that were deferred and never
                  delivered suppress (status ``bounced``)
    rejected, delivered, accepted, unknown: stored, nothing else (``rejected`` means the
                  provider already suppresses the address: not a new bounce; ``accepted`` is
                  read by the send that asks what the provider took, never by a subscriber)

"In a row" counts messages, not events: providers report a deferral at every retry of one
message (SendGrid, SES and MTAs alike), so one slow message is one soft bounce, and a delivery
of any later message (or of that one, in the end) breaks the streak.

A batch of events is decided inside the transaction that stores it (a subscriber stopped by one
event is "already" stopped for the next); the bounces are applied and the effects noted in that
same transaction, so most batches cost one commit. The audience functions for complaints and
unsubscribes open transactions of their own: those run after the commit, and their events are
noted last. Until noted, an event's effect counts as not applied, and is applied again when
the event comes again; applying twice changes nothing (a stopped subscriber stays stopped).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

import sqlalchemy as sa

from ..audience import changes
from ..audience.history import ChangeMethod
from ..audience.model import STOPPED
from ..errors import SubscriberError
from ..store.db import begin_write
from ..store.tables import events as events_table
from ..store.tables import subscribers as subscribers_table
from .events import EventKind
from .store import Pending, mark_applied

MAILBOX = "mailbox"
_STREAK_KINDS = (EventKind.DEFERRED, EventKind.DELIVERED)


class Plan:
    """The changes a batch asks for, and each event's effect as a short word for the log."""

    def __init__(self, statuses: dict[int, tuple[str, str]]):
        self.statuses = statuses  # subscriber id -> (status, email), as planned so far
        self.effects: dict[int, str] = {}
        # (reason, method) -> subscriber ids
        self.bounces: dict[tuple[str, ChangeMethod], list[int]] = defaultdict(list)
        # (event row id, email, reason, method)
        self.complaints: list[tuple[int, str, str, ChangeMethod]] = []
        self.unsubscribes: list[tuple[int, changes.Unsubscribe]] = []  # (event row id, ...)

    def stop(self, event: Pending, status: str, effect: str = "suppressed") -> None:
        self.statuses[event.subscriber_id] = (status, self.statuses[event.subscriber_id][1])
        self.effects[event.id] = effect

    @property
    def later(self) -> set[int]:
        """The events whose change needs a transaction of its own (the audience functions
        for complaints and unsubscribes open one)."""
        return {i for i, *_ in self.complaints} | {i for i, _ in self.unsubscribes}


def apply_in(conn: sa.Connection, pending: Sequence[Pending], *, soft_bounce_limit: int,
             now: datetime) -> Plan:
    """Within the transaction that stored ``pending``: decide every effect, oldest first;
    apply the bounces and note every effect but those ``finish`` applies."""
    pending = sorted({p.id: p for p in pending}.values(), key=lambda p: (p.occurred_at, p.id))
    plan = Plan(_statuses(conn, {p.subscriber_id for p in pending}))
    if not pending:
        return plan
    streaks = soft_bounce_streaks(conn, {p.subscriber_id for p in pending
                                         if p.kind == EventKind.DEFERRED}, soft_bounce_limit)
    for event in pending:
        _decide(plan, event, soft_bounce_limit, streaks, now)
    for (reason, method), ids in plan.bounces.items():
        changes.bounce(conn, ids, reason, method=method)
    later = plan.later
    mark_applied(conn, {i: e for i, e in plan.effects.items() if i not in later}, now)
    return plan


def finish(engine: sa.Engine, plan: Plan, clock: Callable[[], datetime]) -> dict[int, str]:
    """After the commit: the complaints and unsubscribes, then their notes. Every effect of
    the batch, event row id -> effect."""
    if not plan.later:
        return plan.effects
    if plan.unsubscribes:
        changes.unsubscribe_many(engine, [u for _, u in plan.unsubscribes])
    for event_id, email, reason, method in plan.complaints:
        try:
            changes.complain(engine, email, reason, method=method)
        except SubscriberError as exc:  # a stored address the list itself no longer accepts
            plan.effects[event_id] = f"refused: {exc}"[:32]
    with begin_write(engine) as conn:
        mark_applied(conn, {i: plan.effects[i] for i in plan.later}, clock())
    return plan.effects


def _decide(plan: Plan, event: Pending, limit: int, streaks: dict[int, int],
            now: datetime) -> None:
    current = plan.statuses.get(event.subscriber_id)
    if current is None:
        plan.effects[event.id] = "no subscriber"  # erased since
        return
    status, email = current
    if status in STOPPED:
        plan.effects[event.id] = f"already {status}"
    elif event.kind == EventKind.BOUNCED:
        plan.bounces[_reason(event, "bounced"), _via(event)].append(event.subscriber_id)
        plan.stop(event, "bounced")
    elif event.kind == EventKind.COMPLAINED:
        plan.complaints.append((event.id, email, _reason(event, "complaint"), _via(event)))
        plan.stop(event, "complained")
    elif event.kind == EventKind.UNSUBSCRIBED:
        method = changes.UnsubscribeMethod.MAILTO if event.provider == MAILBOX \
            else event.provider
        plan.unsubscribes.append((event.id, changes.Unsubscribe(event.subscriber_id, method,
                                                                changes.Consent(), now)))
        plan.stop(event, "unsubscribed", "unsubscribed")
    elif event.kind == EventKind.DEFERRED:
        streak = streaks.get(event.subscriber_id, 0)
        if streak < limit:
            plan.effects[event.id] = f"soft bounce {streak} of {limit}"
        else:
            plan.bounces[_reason(event, f"{limit} soft bounces in a row"),
                         _via(event)].append(event.subscriber_id)
            plan.stop(event, "bounced")
    else:
        plan.effects[event.id] = "none"


def _via(event: Pending) -> ChangeMethod:
    """Who reports the event, as the status history names it."""
    return ChangeMethod.MAILBOX if event.provider == MAILBOX else ChangeMethod.WEBHOOK


def _statuses(conn: sa.Connection, ids: set[int]) -> dict[int, tuple[str, str]]:
    if not ids:
        return {}
    s = subscribers_table.c
    rows = conn.execute(sa.select(s.id, s.status, s.email).where(s.id.in_(sorted(ids))))
    return {r.id: (r.status, r.email) for r in rows}


def soft_bounce_streaks(conn: sa.Connection, subscriber_ids: set[int],
                        limit: int) -> dict[int, int]:
    """For each subscriber: how many of their latest messages were deferred, never delivered.

    A message is its send (the same edition), else the Message-ID or provider id an event
    names, else the event itself. Counting stops at the first message with a delivery. One
    query for them all, reading each subscriber's newest events only (a window function).
    """
    if not subscriber_ids:
        return {}
    t = events_table
    newest = sa.func.row_number().over(partition_by=t.c.subscriber_id,
                                       order_by=(t.c.occurred_at.desc(), t.c.id.desc()))
    ranked = (sa.select(t.c.subscriber_id, t.c.kind, t.c.send_id, t.c.message_id,
                        t.c.provider_message_id, t.c.event_id, newest.label("n"))
              .where(t.c.subscriber_id.in_(sorted(subscriber_ids)),
                     t.c.kind.in_(_STREAK_KINDS))
              .subquery())
    # Enough for any streak: a message may have several deferrals of its own.
    query = sa.select(ranked).where(ranked.c.n <= max(50, 20 * limit)).order_by(
        ranked.c.subscriber_id, ranked.c.n)
    delivered: dict[int, dict[object, bool]] = {i: {} for i in subscriber_ids}
    for row in conn.execute(query):  # newest first: a message's place is its newest event
        messages = delivered[row.subscriber_id]
        key = row.send_id or row.message_id or row.provider_message_id or row.event_id
        messages[key] = messages.get(key, False) or row.kind == EventKind.DELIVERED
    return {i: _leading_undelivered(messages) for i, messages in delivered.items()}


def _leading_undelivered(messages: dict[object, bool]) -> int:
    streak = 0
    for was_delivered in messages.values():
        if was_delivered:
            break
        streak += 1
    return streak


def _reason(event: Pending, what: str, *, limit: int = 300) -> str:
    """The subscriber's unsubscribe_reason: what happened and the provider's words."""
    words = " ".join(event.reason.split())
    text = f"{what} ({event.provider})" + (f": {words}" if words else "")
    return text[:limit]
