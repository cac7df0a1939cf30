"""What a message is made of: who sends it, one recipient's part, and what a send shares.

A transport is given the ``Outgoing`` of a send once and the ``Personalized`` parts of one
batch; it builds each request (or the message bytes) from those alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formataddr
from typing import Protocol

from ..audience.addresses import envelope_address
from ..audience.recipient import Recipient
from ..edition.placeholders import FieldTemplate


@dataclass(frozen=True, slots=True)
class Sender:
    """Who every message of a send comes from."""

    address: str           # as configured
    name: str
    reply_to: str = ""

    @property
    def envelope(self) -> str:
        """The bare address, domain in IDNA form: SMTP's MAIL FROM, SES's FromEmailAddress."""
        return envelope_address(self.address)

    @property
    def header(self) -> str:
        """``Name <address>`` as HTTP providers take it."""
        return formataddr((self.name, self.envelope))


@dataclass(frozen=True, slots=True)
class Personalized:
    """One recipient's part of a message: values for the placeholders, and the headers that
    differ per recipient. Made in one place (``newsletter.message.personalize``)."""

    recipient: Recipient
    email: str                       # the address to send to, domain in IDNA form
    name: str                        # display name ('' for none)
    values: Mapping[str, str]        # raw, for the text part
    html_values: Mapping[str, str]   # HTML-escaped, for the HTML part
    headers: Mapping[str, str]       # List-Id, List-Unsubscribe, List-Unsubscribe-Post
    message_id: str

    @property
    def to(self) -> str:
        """``Name <addr>``, the domain in IDNA form."""
        return formataddr((self.name, self.email))


class Outgoing(Protocol):
    """What every message of one send shares.

    ``edition_key`` identifies the send (week and content hash); transports put it, with the
    subscriber id, into the provider's metadata so that events can be matched back. The
    sender personalizes each recipient once (``personalize``) and hands the transport the
    results; a transport that takes raw messages asks ``message`` for their bytes.
    """

    sender: Sender
    subject: str
    edition_key: str
    content_hash: str
    html: FieldTemplate
    text: FieldTemplate

    def personalize(self, recipient: Recipient) -> Personalized: ...

    def message(self, person: Personalized, *, dot_stuffed: bool = False) -> bytes:
        """The complete RFC 5322 message, for providers that take raw messages; with
        ``dot_stuffed``, ready to follow SMTP's DATA as it is (RFC 5321 section 4.5.2)."""
        ...
