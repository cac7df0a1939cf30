"""Delivery status notifications (RFC 3464; RFC 6533 for UTF-8 addresses) as Events.

Spec: https://www.rfc-editor.org/rfc/rfc3464 (multipart/report; report-type=delivery-status:
a human-readable part, ``message/delivery-status`` with one block of per-message fields and one
block per recipient, then the returned message or its headers) and
https://www.rfc-editor.org/rfc/rfc6533 (``message/global-delivery-status``, ``utf-8``
addresses). Status codes: https://www.rfc-editor.org/rfc/rfc3463 .

One Event per recipient block. The class of ``Status`` decides the kind (5 is ``bounced``, 4
``deferred``, 2 ``delivered``); without a usable status, ``Action`` does (``failed``,
``delayed``, ``delivered``/``relayed``/``expanded``). The recipient is the Original-Recipient
(the address we sent to) and else the Final-Recipient (which may be an alias's target). The
Message-ID and the unsubscribe token come from the returned headers, when the report has them.
"""

from __future__ import annotations

import hashlib
import re
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
STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_STATUS = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}\b")
_BY_CLASS = {"5": EventKind.BOUNCED, "4": EventKind.DEFERRED, "2": EventKind.DELIVERED}
_BY_ACTION = {"failed": EventKind.BOUNCED, "delayed": EventKind.DEFERRED,
              "delivered": EventKind.DELIVERED, "relayed": EventKind.DELIVERED,
              "expanded": EventKind.DELIVERED}


def is_dsn(message: Message) -> bool:
    if report_type(message) == "delivery-status":
        return True
    return message.get_content_type() == "multipart/report" and \
        find_part(message, *STATUS_TYPES) is not None


def parse_dsn(data: bytes, *, received_at: datetime | None = None,
              message: Message | None = None) -> list[Event]:
    """One Event per recipient of the report; ReportError when it has no readable block."""
    message = message or parse_mail(data)
    part = find_part(message, *STATUS_TYPES)
    if part is None:
        raise ReportError("delivery report without a delivery-status part")
    blocks = field_blocks(part)
    recipients = [b for b in blocks[1:] if b.get("Final-Recipient") or b.get("Original-Recipient")]
    if not recipients:
        raise ReportError("delivery report names no recipient")
    per_message = blocks[0]
    original = returned_headers(message)
    received = received_at or utc_now()
    sent_at = from_rfc5322(header_text(message, "Date"))
    digest = hashlib.sha256(data).hexdigest()
    token = ids.token_in_list_unsubscribe(header_text(original, "List-Unsubscribe"))
    # The same in every recipient's event.
    message_id = ids.angle(header_text(original, "Message-ID"))
    metadata = {"unsubscribe_token": token} if token else {}
    raw = raw_text(data)
    events = []
    for block in recipients:
        address = address_field(block.get("Original-Recipient") or block.get("Final-Recipient"))
        status = block.get("Status")
        match = _STATUS.match(status)
        kind = _BY_CLASS[match[1]] if match else _BY_ACTION.get(
            block.get("Action").split(" ")[0].lower(), EventKind.UNKNOWN)
        events.append(Event(
            provider=PROVIDER,
            kind=kind,
            event_id=digest_id("dsn", digest, address, status),
            recipient=address,
            occurred_at=first_time(from_rfc5322(block.get("Last-Attempt-Date")), sent_at,
                                   from_rfc5322(per_message.get("Arrival-Date")),
                                   default=received),
            reason=_diagnostic(block) or block.get("Action"),
            code=match[0] if match else status,
            message_id=message_id,
            metadata=metadata,
            raw=raw,
        ))
    return events


def _diagnostic(block: Fields) -> str:
    kind, sep, words = block.get("Diagnostic-Code").partition(";")
    return words.strip() if sep else kind.strip()
