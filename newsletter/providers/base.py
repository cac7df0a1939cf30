"""The transport interface, its outcomes and its errors.

A transport gets the shared content once (``Outgoing``) plus one batch's messages, each
recipient personalized already (``Personalized``, no address twice), and returns one
``Outcome`` per message, in order: the one result type from the transport to the ledger,
which records it as it is. Per-recipient outcomes travel in results; outcomes of the whole
request travel as exceptions, so the caller can tell what is safe to do:

    TransportError                  (a NewsletterError: printed on one line, secrets redacted)
    ├── FatalTransportError         stop the whole send: every further request would fail too
    │                               (bad credentials, account paused, sender not allowed);
    │                               ``maybe_accepted``: an earlier attempt of this request may
    │                               have been accepted, so its recipients are ``unknown``, not
    │                               ``untried``
    └── BatchError                  this request failed as a whole; the send may go on
        ├── BatchRejected           permanent: the provider refused the request (e.g. 400, 422)
        │                           -> every recipient in it is ``failed``
        ├── BatchRetryable          transient and certainly not accepted (429, 5xx, connect
        │                           error), retries exhausted -> every recipient is ``retry``
        └── OutcomeUnknown          the request may have been accepted (timeout after the body
                                    was sent, connection reset, 504) -> every recipient is
                                    ``unknown``; resent only with an idempotency key

A provider that answers per message can report such an account-wide error for one message of
a batch in which others were accepted: that outcome has ``fatal=True`` (kind ``untried``: the
recipient had nothing to do with it), so the caller records the whole batch truthfully and
then stops.

Every TransportError carries the provider's name, HTTP status (or SMTP code) and response
body, with the configured secrets redacted.

Next to ``send_batch``, a provider that can be asked what it accepted (``Reconciler``) answers
for the ``unknown`` rows of one batch (``UnknownBatch``) with one ``Finding`` each: accepted
(with its message id), not accepted (safe to send), or still undecided. "Not accepted" is only
said once the provider has had ``settle`` to make the batch searchable; a failed search is
``LookupFailed`` (a TransportError), and leaves every row undecided.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from ..errors import NewsletterError
from ..message.model import Outgoing, Personalized


class OutcomeKind(StrEnum):
    """What one attempt of a recipient's message came to."""

    SENT = "sent"          # accepted by the provider
    FAILED = "failed"      # permanent for this recipient; do not resend
    RETRY = "retry"        # transient; certainly not accepted, safe to send again later
    UNKNOWN = "unknown"    # may or may not have been accepted
    # Never handed to the provider (the batch or the send stopped first): sent again later as
    # if for the first time, the attempt not counted, with no retry wait.
    UNTRIED = "untried"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recipient's outcome, as a transport reports it and the ledger records it."""

    subscriber_id: int
    kind: OutcomeKind
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


# Any one kind of TransportError: the clients' ``error`` makes the kind it is given.
ErrorT = TypeVar("ErrorT", bound=TransportError)


class FatalTransportError(TransportError):
    # Set by the HTTP client when an earlier attempt of the same request may have been
    # accepted (its answer was lost) before the fatal answer came.
    maybe_accepted: bool = False


class BatchError(TransportError):
    outcome: OutcomeKind = OutcomeKind.FAILED


class BatchRejected(BatchError):
    outcome = OutcomeKind.FAILED


class BatchRetryable(BatchError):
    outcome = OutcomeKind.RETRY


class OutcomeUnknown(BatchError):
    outcome = OutcomeKind.UNKNOWN


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return " ".join(text.split())


def results_for(messages: Iterable[Personalized], error: BatchError) -> list[Outcome]:
    """The per-recipient view of a batch-level error."""
    return [
        Outcome(m.recipient.id, error.outcome, code=str(error.status or ""),
                reason=str(error), retry_after=error.retry_after)
        for m in messages
    ]


def not_sent(messages: Iterable[Personalized], cause: TransportError) -> list[Outcome]:
    """``untried`` for recipients never attempted because ``cause`` stopped the batch first:
    their attempt is not counted, and they wait for no retry delay."""
    return [Outcome(m.recipient.id, OutcomeKind.UNTRIED, code=str(cause.status or ""),
                    reason=f"not sent: {cause}", retry_after=cause.retry_after)
            for m in messages]


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


class LookupFailed(TransportError):
    """Asking the provider what it accepted failed (an error answer, a timeout, an answer we
    cannot read): the rows stay ``unknown``, never ``sent`` nor sent again."""


class Verdict(StrEnum):
    """What the provider says of one unknown row."""

    ACCEPTED = "accepted"          # it has the message: the row is sent
    NOT_ACCEPTED = "not_accepted"  # it has no such message, and has had time to show it
    UNDECIDED = "undecided"        # it cannot tell yet (too soon, the search failed, too old)


@dataclass(frozen=True, slots=True)
class UnknownRow:
    subscriber_id: int
    email: str   # the subscriber's address now ("" when erased): what a search by recipient uses


@dataclass(frozen=True, slots=True)
class UnknownBatch:
    """The unknown rows of one request, as the ledger remembers it."""

    key: str                 # the batch key the request was sent under
    edition_key: str         # the edition's key (``Outgoing.edition_key``) it carried
    subject: str             # the edition's subject, as the messages carried it
    sent_at: datetime        # when the batch was first claimed, so sent at the earliest
    rows: tuple[UnknownRow, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    subscriber_id: int
    verdict: Verdict
    message_id: str = ""
    reason: str = ""   # for a person: where it was found, why it is not decided
    raw: Any = None    # the provider's own record of the message, when found
    # Undecided, and asking again once the batch has settled would not change that (Resend
    # within its key's window): not waited for.
    final: bool = False


class Reconciler(Protocol):
    """A provider that can be asked which messages of a batch it accepted."""

    name: str
    # How long after a batch was sent its messages may still be missing from the search:
    # "not found" means "not accepted" only after that.
    settle: timedelta

    async def reconcile(self, batch: UnknownBatch, *, now: datetime) -> list[Finding]:
        """One finding per row of ``batch``, in order; ``LookupFailed`` when the provider
        cannot be asked."""
        ...


def settled(batch: UnknownBatch, settle: timedelta, now: datetime) -> bool:
    """Whether the provider has had time to make the batch's messages searchable."""
    return now >= batch.sent_at + settle


def judge(batch: UnknownBatch, found: Mapping[int, tuple[str, Any]], *, settle: timedelta,
          now: datetime, where: str) -> list[Finding]:
    """Findings from what a search ``found`` (subscriber id -> (message id, raw record)):
    found is accepted at once; not found is "not accepted" only once the batch has settled."""
    wait = (batch.sent_at + settle).strftime("%Y-%m-%d %H:%M:%S UTC")
    return findings_from(batch, found, where=where,
                         absent=f"not in {where}" if settled(batch, settle, now) else None,
                         waiting=f"not in {where} yet; asked again after {wait}")


def findings_from(batch: UnknownBatch, found: Mapping[int, tuple[str, Any]], *, where: str,
                  absent: str | None, waiting: str) -> list[Finding]:
    """Each row found is accepted; a row not found is "not accepted" (saying ``absent``) when
    its absence proves it, else undecided (saying ``waiting``)."""
    out = []
    for row in batch.rows:
        if row.subscriber_id in found:
            message_id, raw = found[row.subscriber_id]
            out.append(Finding(row.subscriber_id, Verdict.ACCEPTED, message_id,
                               f"found in {where}", raw))
        elif absent is not None:
            out.append(Finding(row.subscriber_id, Verdict.NOT_ACCEPTED, reason=absent))
        else:
            out.append(Finding(row.subscriber_id, Verdict.UNDECIDED, reason=waiting))
    return out


def undecided(batch: UnknownBatch, reason: str) -> list[Finding]:
    return [Finding(r.subscriber_id, Verdict.UNDECIDED, reason=reason) for r in batch.rows]


class Transport(Protocol):
    name: str
    max_batch: int          # the provider's documented maximum per request
    idempotent: bool        # True when a resent request can never deliver twice

    async def send_batch(
        self, outgoing: Outgoing, messages: Sequence[Personalized], *, batch_key: str
    ) -> list[Outcome]:
        """Send one batch of personalized messages (no address twice); ``batch_key`` is
        stable for the same batch across retries."""
        ...

    async def aclose(self) -> None: ...


def check_batch(transport: Transport, messages: Sequence[Personalized]) -> None:
    if not messages:
        raise ValueError("empty batch")
    if len(messages) > transport.max_batch:
        raise ValueError(
            f"{transport.name}: batch of {len(messages)} exceeds the provider's maximum of "
            f"{transport.max_batch}"
        )
