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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formataddr
from enum import StrEnum
from typing import Any, Protocol

from ..audience.addresses import envelope_address
from ..audience.recipient import Recipient
from ..edition.placeholders import FieldTemplate
from ..errors import NewsletterError
from ._json_body import Filled


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
    # Never handed to the provider: the batch stopped before this message (``not_sent``).
    # Sent again later as if for the first time, with no retry wait.
    untried: bool = False


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


def not_sent(recipients: Iterable[Recipient], cause: TransportError) -> list[SendResult]:
    """``retry`` for recipients never attempted because ``cause`` stopped the batch first
    (``untried``: their attempt is not counted, and they wait for no retry delay)."""
    return [SendResult(r.id, Status.RETRY, code=str(cause.status or ""),
                       reason=f"not sent: {cause}", retry_after=cause.retry_after,
                       untried=True)
            for r in recipients]


# -- what a transport is given ---------------------------------------------------------------

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
    differ per recipient. Made in one place (``newsletter.delivery.personalize``)."""

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
    """What every message of one send shares, as transports see it.

    ``edition_key`` identifies the send (week and content hash); transports put it, with the
    subscriber id, into the provider's metadata so that events can be matched back.
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


def filled(outgoing: Outgoing, person: Personalized) -> tuple[str, str]:
    """The HTML and text parts with ``person``'s values filled in."""
    html, text = filled_parts(outgoing, person)
    return str(html), str(text)


def filled_parts(outgoing: Outgoing, person: Personalized) -> tuple[Filled, Filled]:
    """The HTML and text parts for ``person``, not yet joined: a JSON body keeps them as the
    edition's shared text and the values (``_json_body``)."""
    return Filled(outgoing.html, person.html_values), Filled(outgoing.text, person.values)


def personalize_batch(outgoing: Outgoing, recipients: Sequence[Recipient],
                      provider: str) -> list[Personalized]:
    """Each recipient's values and headers; an address twice in one batch is refused, since
    providers that substitute per recipient key their variables by address. (The send loop
    fails such a recipient on its own before the batch reaches a transport, so in a send this
    guard never fires; it keeps the request from ever being built wrong.)"""
    seen: set[str] = set()
    out = []
    for recipient in recipients:
        person = outgoing.personalize(recipient)
        if person.email.lower() in seen:
            raise ValueError(f"{provider}: {person.email} appears twice in one batch")
        seen.add(person.email.lower())
        out.append(person)
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
