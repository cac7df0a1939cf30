"""The transport interface, its results and its errors.

A transport gets the shared content once (``Outgoing``) plus the recipients of one batch, and
returns one ``SendResult`` per recipient, in order. Per-recipient outcomes travel in results;
outcomes of the whole request travel as exceptions, so the caller can tell what is safe to do:

    TransportError                  (a NewsletterError: printed on one line, secrets redacted)
    ├── FatalTransportError         stop the whole send: every further request would fail too
    │                               (bad credentials, account paused, sender not allowed)
    └── BatchError                  this request failed as a whole; the send may go on
        ├── BatchRejected           permanent: the provider refused the request (e.g. 400, 422)
        │                           -> every recipient in it is ``failed``
        ├── BatchRetryable          transient and certainly not accepted (429, 5xx, connect
        │                           error), retries exhausted -> every recipient is ``retry``
        └── OutcomeUnknown          the request may have been accepted (timeout after the body
                                    was sent, connection reset, 504) -> every recipient is
                                    ``unknown``; resent only with an idempotency key

A provider that answers per message can report such an account-wide error for one message of
a batch in which others were accepted: that result has ``fatal=True`` (status ``retry``), so
the caller records the whole batch truthfully and then stops.

Every TransportError carries the provider's name, HTTP status (or SMTP code) and response
body, with the configured secrets redacted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import formataddr
from enum import StrEnum
from typing import Any, Protocol

from ..audience.recipient import Recipient, envelope_address
from ..delivery.mime import MessageBuilder
from ..delivery.personalize import Personalizer
from ..errors import NewsletterError


class Status(StrEnum):
    SENT = "sent"          # accepted by the provider
    FAILED = "failed"      # permanent for this recipient; do not resend
    RETRY = "retry"        # transient; not accepted, safe to send again later
    UNKNOWN = "unknown"    # may or may not have been accepted


@dataclass(frozen=True, slots=True)
class SendResult:
    recipient_id: int
    status: Status
    message_id: str = ""
    code: str = ""            # the provider's error code or status, as text
    reason: str = ""          # the provider's words
    bad_address: bool = False  # a permanent failure that means the address itself is bad
    retry_after: float | None = None
    raw: Any = None           # the provider's own payload for this recipient
    # The provider answered for this message with an error that will fail every message
    # (an account or sender problem): record the batch, then stop the send.
    fatal: bool = False


class TransportError(NewsletterError):
    def __init__(self, provider: str, message: str, *, status: int | None = None,
                 body: str = "", retry_after: float | None = None,
                 secrets: Iterable[str] = (), status_label: str = "HTTP"):
        self.provider = provider
        self.status = status
        self.body = redact(body, secrets)
        self.retry_after = retry_after
        detail = f" ({status_label} {status})" if status is not None else ""
        snippet = f": {self.body[:300]}" if self.body else ""
        super().__init__(redact(f"{provider}: {message}{detail}{snippet}", secrets))


class FatalTransportError(TransportError):
    pass


class BatchError(TransportError):
    outcome: Status = Status.FAILED


class BatchRejected(BatchError):
    outcome = Status.FAILED


class BatchRetryable(BatchError):
    outcome = Status.RETRY


class OutcomeUnknown(BatchError):
    outcome = Status.UNKNOWN


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return " ".join(text.split())


def results_for(recipients: Sequence[Recipient], error: BatchError) -> list[SendResult]:
    """The per-recipient view of a batch-level error."""
    return [
        SendResult(r.id, error.outcome, code=str(error.status or ""), reason=str(error),
                   retry_after=error.retry_after)
        for r in recipients
    ]


@dataclass
class Outgoing:
    """What every message of one send shares: the personalizer, a MIME builder, identity.

    ``edition_key`` identifies the send (week and content hash); transports put it, with the
    subscriber id, into the provider's metadata so webhooks can be matched back.
    """

    personalizer: Personalizer
    builder: MessageBuilder
    from_address: str
    from_name: str
    reply_to: str
    subject: str
    edition_key: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def sender(self) -> str:
        return formataddr((self.from_name, self.from_address))

    def personal(self, recipient: Recipient) -> PersonalMessage:
        """One recipient's filled-in message, for providers that take one message each."""
        p = self.personalizer
        url = p.unsubscribe_url(recipient)
        values = p.values(recipient, url)
        return PersonalMessage(
            recipient=recipient,
            to=address(recipient),
            html=p.rendered.html.fill(p.html_values(values)),
            text=p.rendered.text.fill(values),
            headers=p.headers(url),
            message_id=p.message_id(recipient),
        )


@dataclass(frozen=True, slots=True)
class PersonalMessage:
    recipient: Recipient
    to: str
    html: str
    text: str
    headers: dict[str, str]
    message_id: str


def recipient_email(recipient: Recipient) -> str:
    """The address with an internationalized domain in its ASCII (IDNA) form."""
    return envelope_address(recipient.email)


def address(recipient: Recipient) -> str:
    """``Name <addr>``, the domain in IDNA form."""
    return formataddr((recipient.name.strip(), recipient_email(recipient)))


@dataclass(frozen=True, slots=True)
class Person:
    """One recipient of a content-once request: the values a provider substitutes."""

    recipient: Recipient
    email: str                  # IDNA form
    values: dict[str, str]      # raw, for the text part
    html_values: dict[str, str]  # escaped, for the HTML part
    headers: dict[str, str]


def people(outgoing: Outgoing, recipients: Sequence[Recipient], provider: str) -> list[Person]:
    """Each recipient's values and headers; an address twice in one batch is refused, since
    providers that substitute per recipient key their variables by address."""
    p = outgoing.personalizer
    seen: set[str] = set()
    out = []
    for recipient in recipients:
        email = recipient_email(recipient)
        if email.lower() in seen:
            raise ValueError(f"{provider}: {email} appears twice in one batch")
        seen.add(email.lower())
        url = p.unsubscribe_url(recipient)
        values = p.values(recipient, url)
        out.append(Person(recipient, email, values, p.html_values(values), p.headers(url)))
    return out


def pick_nonce(seed: str, texts: Iterable[str]) -> str:
    """8 hex digits derived from ``seed`` that occur in none of ``texts``: a prefix for
    provider substitution tags that no content or value can contain."""
    texts = list(texts)
    salt = 0
    while True:
        nonce = hashlib.sha256(f"{seed}:{salt}".encode()).hexdigest()[:8]
        if not any(nonce in text for text in texts):
            return nonce
        salt += 1


class Transport(Protocol):
    name: str
    max_batch: int          # the provider's documented maximum per request
    idempotent: bool        # True when a resent request can never deliver twice

    async def send_batch(
        self, outgoing: Outgoing, recipients: Sequence[Recipient], *, batch_key: str
    ) -> list[SendResult]:
        """Send one batch; ``batch_key`` is stable for the same batch across retries."""
        ...

    async def aclose(self) -> None: ...


def check_batch(transport: Transport, recipients: Sequence[Recipient]) -> None:
    if not recipients:
        raise ValueError("empty batch")
    if len(recipients) > transport.max_batch:
        raise ValueError(
            f"{transport.name}: batch of {len(recipients)} exceeds the provider's maximum of "
            f"{transport.max_batch}"
        )
