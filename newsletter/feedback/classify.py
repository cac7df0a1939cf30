"""Sorting one mail from the feedback mailbox: delivery report, complaint, unsubscribe, or other.

Reports are recognised by their structure (multipart/report with a delivery-status or
feedback-report part), never by subject or sender, which vary by MTA and language; an
unsubscribe request by the token in its subject. A report that looks like one but cannot be
read is ``other`` with a note saying why, so it is left for a person rather than half-read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypedDict

from . import arf, dsn, mailto
from .events import Event, ReportError
from .mailparts import header_text, parse_mail


class MailKind(StrEnum):
    DSN = "dsn"
    ARF = "arf"
    UNSUBSCRIBE = "unsubscribe"
    OTHER = "other"


@dataclass(frozen=True)
class MailItem:
    kind: MailKind
    events: list[Event] = field(default_factory=list)
    message_id: str = ""  # the mail's own Message-ID, for logs
    subject: str = ""
    note: str = ""  # why an ``other`` mail was not read


class _About(TypedDict):
    """What every ``MailItem`` of one mail says about the mail itself."""

    message_id: str
    subject: str


def classify(data: bytes, *, received_at: datetime | None = None) -> MailItem:
    message = parse_mail(data)
    about: _About = {"message_id": header_text(message, "Message-ID"),
             "subject": header_text(message, "Subject")}
    try:
        if dsn.is_dsn(message):
            return MailItem(MailKind.DSN, dsn.parse_dsn(data, received_at=received_at,
                                                        message=message), **about)
        if arf.is_arf(message):
            return MailItem(MailKind.ARF, arf.parse_arf(data, received_at=received_at,
                                                        message=message), **about)
    except ReportError as exc:
        return MailItem(MailKind.OTHER, note=str(exc), **about)
    events = mailto.parse_unsubscribe(data, received_at=received_at, message=message)
    if events:
        return MailItem(MailKind.UNSUBSCRIBE, events, **about)
    return MailItem(MailKind.OTHER, note="not a delivery report, complaint or unsubscribe "
                    "request", **about)
