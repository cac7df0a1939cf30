"""The worker's small recurring jobs beside the weekly send: its heartbeat in the database
(``delivery.beats``), send the confirmation mails the web app queued (its durable outbox), read
the feedback mailbox when one is configured (each poll recorded, with how it went), watch for
stalled sends (``delivery.stalls``), whichever process is sending them, and post the alerts
sends and stalls queued (``delivery.alert_outbox``) when ``alert_webhook_url`` is set.

Each runs in its own scheduler thread, so a slow IMAP server never delays the weekly send, and
each run is independent: whatever one run could not do (a provider or a mailbox down) the next
one retries. A problem is one log line; the worker carries on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime

from ..clock import utc_now
from ..config import Config
from ..errors import NewsletterError

log = logging.getLogger("newsletter.worker")

OUTBOX_EVERY = 30.0      # seconds: a confirmation mail should arrive while the reader waits
MAILBOX_EVERY = 300.0    # seconds: bounces and unsubscribe mails are not urgent
STALLS_EVERY = 60.0      # seconds: stall_after is minutes; a minute late is soon enough
ALERTS_EVERY = 30.0      # seconds: an alert is read by a person, who need not wait longer
BEAT_EVERY = 30.0        # seconds: a dead worker shows on /metrics within a minute


def _one_line(exc: BaseException) -> str:
    return re.sub(r"\s+", " ", str(exc)).strip() or type(exc).__name__


def drain_confirmations(config: Config) -> int:
    """Send the due confirmation mails; how many the provider accepted."""
    from ..delivery.confirmations import drain_outbox
    from ..store.db import connect

    try:
        sent = drain_outbox(config, connect(config.database_url))
    except NewsletterError as exc:
        log.warning("confirmation mails: not sent now: %s; retried in %.0f s",
                    _one_line(exc), OUTBOX_EVERY)
        return 0
    if sent:
        log.info("confirmation mails: %d sent", sent)
    return sent


def beat(config: Config, clock: Callable[[], datetime] = utc_now) -> bool:
    """Record the worker's heartbeat; False (one warning) when the database did not take it."""
    import sqlalchemy as sa

    from ..delivery.beats import BeatName, record
    from ..store.db import connect

    try:
        record(connect(config.database_url), BeatName.WORKER, clock())
    except (NewsletterError, sa.exc.SQLAlchemyError) as exc:
        log.warning("heartbeat: not recorded: %s; again in %.0f s", _one_line(exc), BEAT_EVERY)
        return False
    return True


def poll_mailbox(config: Config, clock: Callable[[], datetime] = utc_now) -> None:
    """Read the feedback mailbox once and log what was taken in (the poll records itself)."""
    from ..feedback.mailbox_job import poll_once
    from ..store.db import connect

    try:
        summary = poll_once(config, connect(config.database_url), clock=clock)
    except NewsletterError as exc:
        log.warning("mailbox: not read: %s; retried in %.0f s", _one_line(exc), MAILBOX_EVERY)
        return
    if summary.processed or summary.failed:
        log.info("mailbox: %s", summary.line())


def drain_alerts(config: Config) -> int:
    """Post the due alerts to alert_webhook_url; how many it took."""
    import sqlalchemy as sa

    from ..delivery.alert_outbox import drain_alerts as drain
    from ..store.db import connect

    try:
        return drain(config, connect(config.database_url))
    except (NewsletterError, sa.exc.SQLAlchemyError) as exc:
        log.warning("alerts: not posted now: %s; retried in %.0f s", _one_line(exc),
                    ALERTS_EVERY)
        return 0


class StallWatch:
    """Logs one error line per stall, and queues its alert: again only once the send has moved
    and stalled anew (the alert's key is the stall's last progress too, so a restarted worker
    does not say it twice)."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self.clock = clock
        self._told: set[tuple[int, datetime]] = set()  # (send, its last progress)

    def __call__(self, config: Config) -> list[str]:
        import sqlalchemy as sa

        from ..delivery.alerts import send_stalled
        from ..delivery.stalls import find_stalls
        from ..store.db import connect

        try:
            engine = connect(config.database_url)
            stalls = find_stalls(engine, stall_after=config.stall_after, now=self.clock())
        except (NewsletterError, sa.exc.SQLAlchemyError) as exc:
            log.warning("stall watch: not checked: %s", _one_line(exc))
            return []
        current = {(s.send_id, s.since) for s in stalls}
        new = [s for s in stalls if (s.send_id, s.since) not in self._told]
        self._told = current
        for stall in new:
            log.error("%s", stall.line())
            send_stalled(config, engine, stall)
        return [s.line() for s in new]


def add_jobs(scheduler, config: Config) -> list[str]:
    """Add the recurring jobs to an APScheduler scheduler; return their names."""
    from apscheduler.triggers.interval import IntervalTrigger

    jobs: list[tuple[str, Callable[[Config], object], float]] = [
        ("heartbeat", beat, BEAT_EVERY),
        ("confirmation mails", drain_confirmations, OUTBOX_EVERY),
        ("stall watch", StallWatch(), STALLS_EVERY)]
    if config.imap_host:
        jobs.append(("mailbox", poll_mailbox, MAILBOX_EVERY))
    if config.alert_webhook_url:
        jobs.append(("alerts", drain_alerts, ALERTS_EVERY))
    for name, function, every in jobs:
        # The heartbeat beats at once: a worker that started shows before 30 s have passed.
        first = {"next_run_time": utc_now()} if function is beat else {}
        scheduler.add_job(function, IntervalTrigger(seconds=every), args=[config], name=name,
                          id=name.replace(" ", "-"), executor="housekeeping", coalesce=True,
                          max_instances=1, **first)
    return [name for name, _, _ in jobs]
