"""Unsubscribes in the days after an edition's send started.

The subscribers are those the send's ``unsubscribed`` figure counts
(``feedback.report.unsubscribe_times``), each on the day of its first word of it; so the
days plus ``later`` add up to that figure.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..feedback.report import unsubscribe_times
from ..store.tables import sends
from .model import EditionUnsubscribes

DAYS = 7
EDITIONS = 6  # the report's edition and the five before it


def after_send(conn: sa.Connection, send_id: int, days: int = DAYS) -> EditionUnsubscribes:
    week, started = conn.execute(sa.select(sends.c.week, sends.c.created_at)
                                 .where(sends.c.id == send_id)).one()
    by_day = [0] * days
    later = 0
    for at in unsubscribe_times(conn, send_id).values():
        # An event stamped a little before the send started (a provider's clock) is day 1.
        day = max(0, int((at - started).total_seconds() // 86400))
        if day < days:
            by_day[day] += 1
        else:
            later += 1
    return EditionUnsubscribes(week, tuple(by_day), later)


def recent_editions(conn: sa.Connection, send_id: int,
                    editions: int = EDITIONS) -> tuple[EditionUnsubscribes, ...]:
    """The send and the ones started before it (cancelled ones left out), oldest first."""
    started = conn.execute(sa.select(sends.c.created_at)
                           .where(sends.c.id == send_id)).scalar_one()
    ids = conn.execute(sa.select(sends.c.id)
                       .where(sends.c.created_at <= started, sends.c.status != "cancelled")
                       .order_by(sends.c.created_at.desc(), sends.c.id.desc())
                       .limit(editions)).scalars().all()
    if send_id not in ids:  # the report's own send is shown even when cancelled
        ids = [send_id, *ids[:editions - 1]]
    return tuple(after_send(conn, i) for i in reversed(ids))


def for_sends(engine: sa.Engine, send_ids: list[int],
              days: int = DAYS) -> list[EditionUnsubscribes]:
    """``after_send`` of each send, in the order given."""
    with engine.connect() as conn:
        return [after_send(conn, i, days) for i in send_ids]


def sparkline_line(edition: EditionUnsubscribes) -> str:
    """``2026-W47  ▁█▃▁▁▁▁  unsubscribes per day after the send: 4 (+1 later)``."""
    from .sparkline import sparkline

    later = f" (+{edition.later} later)" if edition.later else ""
    return (f"{edition.week}  {sparkline(edition.by_day)}  unsubscribes per day after the "
            f"send: {sum(edition.by_day)}{later}")
