"""``edition_report(config, week)``: the figures of the week's send, read once.

The funnel comes from the same functions ``newsletter status`` prints
(``delivery.status.send_status`` and ``feedback.report.send_feedback``), so the two can
never disagree; the rest reads the event log and the status history.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ..clock import utc_now
from ..config import Config
from ..delivery.states import DeliveryStatus
from ..delivery.status import STATES, send_status
from ..edition.content import resolve_week
from ..errors import NewsletterError
from ..feedback.report import send_feedback
from ..store.db import connect
from ..store.tables import sends
from . import domains, growth, unsubscribes
from .clicks import week_clicks
from .model import EditionReport, Funnel


class NoSuchSend(NewsletterError):
    """The week was never sent: there is nothing to report."""


def edition_report(config: Config, week: str | None,
                   now: datetime | None = None) -> EditionReport:
    """The report of ``week``'s send (its latest, as ``status`` shows); NoSuchSend if none."""
    week_name = resolve_week(week, config.timezone)
    status = send_status(config, week_name)
    if status is None:
        raise NoSuchSend(f"no send for {week_name}: nothing to report")
    send = status.send
    with connect(config.database_url).connect() as conn:
        feedback = send_feedback(conn, send.id)
        subject = conn.execute(sa.select(sends.c.subject)
                               .where(sends.c.id == send.id)).scalar_one()
        top, rest = domains.top(domains.by_domain(conn, send.id))
        weeks = growth.weekly_growth(conn, week_name, config.timezone)
        after = unsubscribes.recent_editions(conn, send.id)
        clicks = week_clicks(conn, config, week_name)
    funnel = Funnel(subscribers_at_start=send.total,
                    sent=status.counts.get(DeliveryStatus.SENT, 0),
                    failed=status.counts.get(DeliveryStatus.FAILED, 0),
                    bounced_hard=feedback.bounced, bounced_soft=feedback.soft,
                    complained=feedback.complained, unsubscribed=feedback.unsubscribed)
    shown = (*STATES, DeliveryStatus.CANCELLED)
    return EditionReport(
        week=send.week, subject=subject, status=str(send.status), provider=send.provider,
        started_at=send.created_at, finished_at=send.finished_at,
        generated_at=now or utc_now(), funnel=funnel,
        deliveries={str(state): status.counts.get(state, 0) for state in shown},
        domains=top, other_domains=rest, growth=weeks, unsubscribes=after, clicks=clicks)
