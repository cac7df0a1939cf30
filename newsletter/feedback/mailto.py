"""Unsubscribe requests sent to ``unsubscribe_mailto`` as mail (RFC 2369 List-Unsubscribe).

Every message's List-Unsubscribe offers ``mailto:<unsubscribe_mailto>?subject=unsubscribe%20
<token>`` (RFC 6068 URL), with the same signed token as the unsubscribe link. A request is a
mail whose subject carries that token; the Event names the sender and keeps the token in
``metadata["unsubscribe_token"]``. The token's signature is not checked here (that needs the
secret key): whoever acts on the event must check it, which is also what ties the request to
a subscriber, since people often write from another address than the one subscribed.
"""

from __future__ import annotations

import email.utils
import hashlib
from datetime import datetime
from email.message import Message

from ..clock import utc_now
from . import ids
from .events import Event, EventKind, digest_id
from .mailparts import header_text, parse_mail, raw_text
from .times import from_rfc5322

PROVIDER = "mailbox"


def request_token(message: Message) -> str:
    """The unsubscribe token in the message's subject, or ''."""
    return ids.token_in_subject(header_text(message, "Subject"))


def parse_unsubscribe(data: bytes, *, received_at: datetime | None = None,
                      message: Message | None = None) -> list[Event]:
    """The request as one ``unsubscribed`` Event, or none when the subject has no token."""
    message = message or parse_mail(data)
    token = request_token(message)
    if not token:
        return []
    _, sender = email.utils.parseaddr(header_text(message, "From"))
    return [Event(
        provider=PROVIDER,
        kind=EventKind.UNSUBSCRIBED,
        event_id=digest_id("mailto", hashlib.sha256(data).hexdigest()),
        recipient=sender,
        # When the mailbox received it, rather than the Date the sender's client claims.
        occurred_at=received_at or from_rfc5322(header_text(message, "Date"))
        or utc_now(),
        reason="unsubscribe request by mail",
        metadata={"unsubscribe_token": token},
        raw=raw_text(data),
    )]
