"""Abuse feedback reports (ARF, RFC 5965) as ``complained`` Events.

Spec: https://www.rfc-editor.org/rfc/rfc5965 (multipart/report; report-type=feedback-report:
a human-readable part, ``message/feedback-report`` with ``Feedback-Type`` and optional
``Original-Rcpt-To``, ``Arrival-Date``, ``User-Agent``, ..., then the reported message as
``message/rfc822`` or its headers as ``text/rfc822-headers``). Feedback types: RFC 5965 7.3,
RFC 6591 (``auth-failure``), RFC 6430 (``not-spam``).

``abuse`` and ``fraud`` are complaints; ``virus``, ``auth-failure``, ``not-spam`` and ``other``
are not a reader asking to stop, and are recorded as ``unknown``. Many feedback loops redact
the recipient's address, so besides ``Original-Rcpt-To`` (or the returned ``To``) an event
carries the returned Message-ID and the unsubscribe token from the returned List-Unsubscribe:
the token, being signed, is the surest way back to the subscriber.
"""

from __future__ import annotations

import email.utils
import hashlib
from datetime import datetime
from email.message import Message

from ..clock import utc_now
from . import ids
from .events import Event, EventKind, ReportError, digest_id
from .mailparts import (
    Fields,
    address_field,
    field_blocks,
    find_part,
    header_text,
    parse_mail,
    raw_text,
    report_type,
    returned_headers,
)
from .times import first_time, from_rfc5322

PROVIDER = "mailbox"
REPORT_TYPE = "message/feedback-report"
COMPLAINTS = {"abuse", "fraud"}


def is_arf(message: Message) -> bool:
    if report_type(message) == "feedback-report":
        return True
    return message.get_content_type() == "multipart/report" and \
        find_part(message, REPORT_TYPE) is not None


def parse_arf(data: bytes, *, received_at: datetime | None = None,
              message: Message | None = None) -> list[Event]:
    """One Event per reported recipient (one, with no address, when the report redacts it)."""
    message = message or parse_mail(data)
    part = find_part(message, REPORT_TYPE)
    blocks = field_blocks(part) if part is not None else []
    if not blocks or not blocks[0].get("Feedback-Type"):
        raise ReportError("feedback report without a Feedback-Type")
    fields = blocks[0]
    feedback = fields.get("Feedback-Type").lower()
    original = returned_headers(message)
    token = ids.token_in_list_unsubscribe(header_text(original, "List-Unsubscribe"))
    digest = hashlib.sha256(data).hexdigest()
    agent = fields.get("User-Agent") or fields.get("Reporting-MTA")
    when = first_time(from_rfc5322(fields.get("Arrival-Date") or fields.get("Received-Date")),
                      from_rfc5322(header_text(message, "Date")),
                      default=received_at or utc_now())
    return [Event(
        provider=PROVIDER,
        kind=EventKind.COMPLAINED if feedback in COMPLAINTS else EventKind.UNKNOWN,
        event_id=digest_id("arf", digest, address),
        recipient=address,
        occurred_at=when,
        reason=f"{feedback} report" + (f" from {agent}" if agent else ""),
        code=feedback,
        message_id=ids.angle(header_text(original, "Message-ID")),
        metadata={"unsubscribe_token": token} if token else {},
        raw=raw_text(data),
    ) for address in _recipients(fields, original)]


def _recipients(fields: Fields, original: Message | None) -> list[str]:
    addresses = [address_field(v) for v in fields.get_all("Original-Rcpt-To") if v.strip()]
    if not addresses:
        _, to = email.utils.parseaddr(header_text(original, "To"))
        addresses = [to] if "@" in to else []
    return addresses or [""]
