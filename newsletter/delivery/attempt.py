"""One batch's attempt: whatever happens, one outcome per recipient, and whether the send
must stop.

First the recipients are screened (a first attempt only; a repeat must carry exactly what
the first request did): one whose stored values no message can carry, or whose address is
already in the batch, fails on its own, with the reason. The rest go to the transport:

- its results map onto the recipients (a result marked fatal: not tried, and the send stops);
- FatalTransportError: nobody was sent (not tried; unknown if an earlier attempt of this
  request may have been accepted), the send stops;
- BatchError: each recipient gets the error's outcome (failed, retry or unknown);
- anything else (a bug, a full disk): unknown if a request may have left, not tried if none
  did, and the send stops with one line naming the error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..audience.recipient import Recipient
from ..errors import NewsletterError
from ..providers._http import watch_requests
from ..providers.base import (
    BatchError,
    FatalTransportError,
    Outgoing,
    Personalized,
    SendResult,
    Transport,
    results_for,
)
from .ledger.claiming import Claim
from .ledger.recording import Outcome
from .ratelimit import RateLimiter
from .states import OutcomeKind

log = logging.getLogger("newsletter.send")


@dataclass
class Attempt:
    outcomes: list[Outcome]      # outcomes[i] is for claim.recipients[i]
    abort: str | None = None     # why the send must stop, if it must


async def attempt(transport: Transport, outgoing: Outgoing, claim: Claim,
                  limiter: RateLimiter) -> Attempt:
    recipients = claim.recipients
    outcomes: list[Outcome | None] = [None] * len(recipients)
    if claim.repeat:
        ready, checked = list(range(len(recipients))), outgoing
    else:
        ready, persons = screen(outgoing, recipients, outcomes)
        checked = Screened(outgoing, persons)
    abort = None
    if ready:
        batch = [recipients[i] for i in ready]
        await limiter.acquire(len(batch))
        results, abort = await _send(transport, checked, batch, claim.batch_key)
        for i, outcome in zip(ready, results, strict=True):
            outcomes[i] = outcome
    assert all(o is not None for o in outcomes), "every recipient has an outcome"
    return Attempt(outcomes, abort)  # type: ignore[arg-type]


def screen(outgoing: Outgoing, recipients: Sequence[Recipient],
           outcomes: list[Outcome | None]) -> tuple[list[int], dict[int, Personalized]]:
    """Personalize each recipient; fail (in ``outcomes``) those that cannot be. Returns the
    indexes of the others and their personalizations (keyed by ``id()`` of the recipient)."""
    ready: list[int] = []
    persons: dict[int, Personalized] = {}
    seen: dict[str, int] = {}
    for i, recipient in enumerate(recipients):
        try:
            person = outgoing.personalize(recipient)
        except (NewsletterError, ValueError) as exc:
            outcomes[i] = Outcome(recipient.id, OutcomeKind.FAILED, code="message",
                                  reason=one_line(exc))
            continue
        address = person.email.lower()
        if address in seen:
            outcomes[i] = Outcome(recipient.id, OutcomeKind.FAILED, code="duplicate", reason=(
                f"{person.email} appears twice in one batch (as subscriber {seen[address]} "
                "too): one mailbox, one copy"))
            continue
        seen[address] = recipient.id
        persons[id(recipient)] = person
        ready.append(i)
    return ready, persons


class Screened:
    """``outgoing`` with the screened recipients' personalizations kept, so that the
    transport does not make them again (and a test send's Message-IDs stay the same)."""

    def __init__(self, outgoing: Outgoing, persons: dict[int, Personalized]):
        self._outgoing = outgoing
        self._persons = persons

    def personalize(self, recipient: Recipient) -> Personalized:
        person = self._persons.get(id(recipient))
        return person if person is not None else self._outgoing.personalize(recipient)

    def __getattr__(self, name: str):
        return getattr(self._outgoing, name)


async def _send(transport: Transport, outgoing: Outgoing, batch: list[Recipient],
                key: str) -> tuple[list[Outcome], str | None]:
    with watch_requests() as watch:
        try:
            results = await transport.send_batch(outgoing, batch, batch_key=key)
        except FatalTransportError as exc:
            kind = OutcomeKind.UNKNOWN if getattr(exc, "maybe_accepted", False) \
                else OutcomeKind.UNTRIED
            return [Outcome(r.id, kind, code=str(exc.status or ""), reason=f"not sent: {exc}")
                    for r in batch], str(exc)
        except BatchError as exc:
            return [_outcome(r) for r in results_for(batch, exc)], None
        except Exception as exc:  # a bug or the machine: record the batch, then stop
            reason = f"{transport.name}: {type(exc).__name__}: {one_line(exc)}"
            log.debug("the batch %s raised", key, exc_info=True)
            kind = OutcomeKind.UNTRIED if watch.used and not watch.sent else OutcomeKind.UNKNOWN
            return [Outcome(r.id, kind, code="error", reason=reason) for r in batch], reason
    if len(results) != len(batch) or any(res.recipient_id != r.id
                                         for res, r in zip(results, batch, strict=False)):
        reason = (f"{transport.name}: {len(results)} results for a batch of {len(batch)}, "
                  "not one per recipient in order")
        return [Outcome(r.id, OutcomeKind.UNKNOWN, code="error", reason=reason)
                for r in batch], reason
    abort = next((f"{transport.name}: {res.reason}" for res in results if res.fatal), None)
    return [_outcome(res) for res in results], abort


def _outcome(result: SendResult) -> Outcome:
    kind = OutcomeKind(str(result.status))
    if result.fatal or result.untried:  # the recipient had nothing to do with it
        kind = OutcomeKind.UNTRIED
    return Outcome(result.recipient_id, kind, result.message_id, result.code, result.reason,
                   result.bad_address, result.retry_after)


def one_line(exc: BaseException) -> str:
    """An error as one line of text."""
    return " ".join(str(exc).split()) or type(exc).__name__
