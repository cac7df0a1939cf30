"""One poll of the feedback mailbox: ``newsletter mailbox poll`` and the worker's job.

Each delivery report, complaint and unsubscribe request is taken in (matched, stored, its
effects applied) before the mail is moved away; a mail whose intake fails (the database is
down) stays in the folder and is read again next time. Blocking: the worker runs it in a
thread.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from ..clock import utc_now
from ..config import Config
from ..errors import NewsletterError
from . import mailbox
from ._sql import error_line
from .classify import MailItem
from .events import FeedbackError
from .intake import Intake, Rules, take_in

log = logging.getLogger("newsletter.feedback")


@dataclass
class PollSummary:
    processed: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)  # one line each: what, and why
    intake: Intake = field(default_factory=Intake)

    def line(self) -> str:
        text = (f"read {self.processed} mail(s): {self.intake.summary()}; "
                f"{self.skipped} left in place (not a report or unsubscribe request)")
        return text + (f"; {len(self.failed)} failed, kept for the next poll"
                       if self.failed else "")


def poll_once(config: Config, engine: sa.Engine, *, ssl_context: ssl.SSLContext | None = None,
              clock: Callable[[], datetime] = utc_now) -> PollSummary:
    """Read the mailbox once, and record the poll (``delivery.beats``: its time, and why it
    failed); ``ConfigError`` without ``imap_host``, ``MailboxError`` when it cannot be used
    at all."""
    config.require("imap_host", "imap_username")
    at = clock()
    try:
        summary = _poll(config, engine, ssl_context, clock)
    except NewsletterError as exc:
        _record(config, engine, at, " ".join(str(exc).split()))
        raise
    # Mail read but not taken in (the database refused it) is a poll that did not work either.
    _record(config, engine, at, f"{len(summary.failed)} mail(s) not taken in, kept for the "
            "next poll" if summary.failed else None)
    return summary


def _record(config: Config, engine: sa.Engine, at: datetime, error: str | None) -> None:
    """The poll in ``service_beats``, never raising: a poll that worked stays one that worked."""
    from ..delivery.beats import BeatName, record

    try:
        record(engine, BeatName.MAILBOX, at, error=error, secrets=(config.imap_password,))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("mailbox: poll not recorded: %s", error_line(exc))


def _poll(config: Config, engine: sa.Engine, ssl_context: ssl.SSLContext | None,
          clock: Callable[[], datetime]) -> PollSummary:
    rules = Rules.from_config(config)
    summary = PollSummary()

    def handle(item: MailItem) -> None:
        try:
            summary.intake.add(take_in(engine, item.events, rules, received_at=clock(),
                                       clock=clock))
        except sa.exc.SQLAlchemyError as exc:  # the mail stays for the next poll
            raise FeedbackError(f"not stored: {error_line(exc)}") from None

    result = mailbox.poll(
        host=config.imap_host, port=config.imap_port or None, username=config.imap_username,
        password=config.imap_password, folder=config.imap_folder,
        security=config.imap_security, handle=handle, ssl_context=ssl_context)
    summary.processed = len(result.processed)
    summary.skipped = len(result.skipped)
    summary.failed = [f"{item.kind} {item.message_id or '(no Message-ID)'}: {why}"
                      for item, why in result.failed]
    return summary
