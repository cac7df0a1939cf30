"""What came back from a send: bounces, complaints and unsubscribes, counted per subscriber.

A subscriber counts once per kind and send, however many events say so. ``bounced`` is hard
bounces only; ``soft`` are subscribers with a deferral and no delivery or bounce for that send;
``rejected`` (the provider already suppressed the address) is shown apart and is not a new
bounce. Unsubscribes are those the providers and the mailbox reported for the send, plus the
recipients who unsubscribed on the web after the send started and before the next one began
(the link carries no edition, so the time is what ties them to it). Rates are of the messages
sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..store.tables import deliveries, events, sends, subscribers
from .events import EventKind

KINDS = ("bounced", "complained", "unsubscribed", "soft", "rejected")


@dataclass(frozen=True)
class Feedback:
    sent: int
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0
    soft: int = 0
    rejected: int = 0

    def rate(self, kind: str) -> float:
        return getattr(self, kind) / self.sent if self.sent else 0.0

    def as_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {"sent": self.sent}
        for kind in KINDS:
            out[kind] = getattr(self, kind)
            out[f"{kind}_rate"] = round(self.rate(kind), 6)
        return out


@dataclass(frozen=True)
class SendSummary:
    id: int
    week: str
    status: str
    provider: str
    created_at: datetime
    finished_at: datetime | None
    total: int
    failed: int
    feedback: Feedback


def send_feedback(conn: sa.Connection, send_id: int) -> Feedback:
    d, e = deliveries.c, events.c
    sent = conn.execute(sa.select(sa.func.count()).where(
        d.send_id == send_id, d.status == "sent")).scalar_one()
    kinds: dict[int, set[str]] = {}
    query = (sa.select(e.subscriber_id, e.kind).distinct()
             .where(e.send_id == send_id, e.subscriber_id.is_not(None)))
    for subscriber_id, kind in conn.execute(query):
        kinds.setdefault(subscriber_id, set()).add(kind)
    unsubscribed = unsubscribe_times(conn, send_id)

    def having(kind: str) -> int:
        return sum(1 for k in kinds.values() if kind in k)

    soft = sum(1 for k in kinds.values() if EventKind.DEFERRED in k
               and not k & {EventKind.DELIVERED, EventKind.BOUNCED})
    return Feedback(sent, having(EventKind.BOUNCED), having(EventKind.COMPLAINED),
                    len(unsubscribed), soft, having(EventKind.REJECTED))


def unsubscribe_times(conn: sa.Connection, send_id: int) -> dict[int, datetime]:
    """The send's unsubscribed subscribers (the ``unsubscribed`` figure counts them), each
    with when: the first event saying so, or the web unsubscribe's time. The edition report
    spreads them over the days after the send; counting them here keeps both the same."""
    e = events.c
    query = (sa.select(e.subscriber_id, sa.func.min(e.occurred_at))
             .where(e.send_id == send_id, e.subscriber_id.is_not(None),
                    e.kind == EventKind.UNSUBSCRIBED)
             .group_by(e.subscriber_id))
    found: dict[int, datetime] = {}
    for subscriber_id, at in conn.execute(query):
        found[subscriber_id] = at
    for subscriber_id, at in _unsubscribed_on_the_web(conn, send_id).items():
        found[subscriber_id] = min(found.get(subscriber_id, at), at)
    return found


def _unsubscribed_on_the_web(conn: sa.Connection, send_id: int) -> dict[int, datetime]:
    started = conn.execute(sa.select(sends.c.created_at).where(sends.c.id == send_id)).scalar()
    if started is None:
        return {}
    following = conn.execute(sa.select(sa.func.min(sends.c.created_at))
                             .where(sends.c.created_at > started)).scalar()
    d, s = deliveries.c, subscribers.c
    window = s.unsubscribed_at >= started
    if following is not None:
        window &= s.unsubscribed_at < following
    query = (sa.select(s.id, s.unsubscribed_at)
             .select_from(deliveries.join(subscribers, s.id == d.subscriber_id))
             .where(d.send_id == send_id, d.status == "sent", s.status == "unsubscribed",
                    window))
    return {row[0]: row[1] for row in conn.execute(query)}


def send_summaries(engine: sa.Engine) -> Iterator[SendSummary]:
    """Every send, newest first, with its counts."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sends).order_by(sends.c.created_at.desc(),
                                                      sends.c.id.desc())).all()
        failed: dict[int, int] = dict(conn.execute(
            sa.select(deliveries.c.send_id, sa.func.count())
            .where(deliveries.c.status == "failed").group_by(deliveries.c.send_id)).all())
        summaries = [SendSummary(r.id, r.week, r.status, r.provider, r.created_at,
                                 r.finished_at, r.total, failed.get(r.id, 0),
                                 send_feedback(conn, r.id)) for r in rows]
    yield from summaries


def feedback_lines(engine: sa.Engine, send_id: int) -> list[str]:
    """The lines ``newsletter status`` adds for a send."""
    with engine.connect() as conn:
        fb = send_feedback(conn, send_id)
    if not fb.sent:
        return []
    parts = [f"{getattr(fb, k)} {k} ({fb.rate(k):.2%})" for k in
             ("bounced", "complained", "unsubscribed")]
    line = f"  feedback  {', '.join(parts)}"
    extra = []
    if fb.soft:
        extra.append(f"{fb.soft} soft-bounced")
    if fb.rejected:
        extra.append(f"{fb.rejected} already suppressed by the provider")
    return [line] + ([f"            {', '.join(extra)}"] if extra else [])
