"""The list's growth week by week, from the status history (``status_changes``).

A week is an ISO week in the configured time zone, as editions are. Per week: *joined*,
subscribers whose first status falls in it (pending or active); *confirmed*, changes into
``active`` (a confirmation, an add as active, a resubscribe); *left*, changes from
``active`` to a stopped status (unsubscribed, bounced, complained). Subscribers erased on
request take their history with them, so past weeks can shrink after an erasure.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..audience.model import STOPPED, SubscriberStatus
from ..store.tables import status_changes
from .model import WeekGrowth

WEEKS = 12


def weekly_growth(conn: sa.Connection, week: str, timezone: str,
                  weeks: int = WEEKS) -> tuple[WeekGrowth, ...]:
    """The ``weeks`` weeks ending with ``week``, oldest first."""
    zone = ZoneInfo(timezone)
    year, number = int(week[:4]), int(week[6:])
    last_monday = date.fromisocalendar(year, number, 1)
    mondays = [last_monday - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    start = _utc(mondays[0], zone)
    end = _utc(last_monday + timedelta(weeks=1), zone)
    figures = {_week_of(m): [0, 0, 0] for m in mondays}
    c = status_changes.c
    rows = conn.execute(sa.select(c.at, c.from_status, c.to_status)
                        .where(c.at >= start, c.at < end))
    for at, before, after in rows:
        counts = figures.get(_week_of(at.astimezone(zone).date()))
        if counts is None:
            continue
        counts[0] += before is None
        counts[1] += after == SubscriberStatus.ACTIVE and before != SubscriberStatus.ACTIVE
        counts[2] += before == SubscriberStatus.ACTIVE and after in STOPPED
    return tuple(WeekGrowth(name, *counts) for name, counts in figures.items())


def _utc(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _week_of(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"
