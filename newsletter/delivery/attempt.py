"""One batch's attempt: whatever happens, one outcome per recipient, and whether the send
must stop.

First each recipient is personalized, once: on a first attempt one whose stored values no
message can carry, or whose address is already in the batch, fails on its own, with the
reason. A repeat must carry exactly what the first request did, so there a recipient that
cannot be personalized stops the send instead, the batch left as it was (not tried again
now). The personalized messages go to the transport:

- its outcomes, one per message in order, are the batch's as they are (one marked fatal
  stops the send); any other answer is unknown for all, and the send stops;
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
from ..message.model import Outgoing, Personalized
from ..providers._http import watch_requests
from ..providers.base import (
    BatchError,
    FatalTransportError,
    Outcome,
    OutcomeKind,
    Transport,
    results_for,
)
from .ledger.claiming import Claim
from .ratelimit import RateLimiter

log = logging.getLogger("newsletter.send")


@dataclass
class Attempt:
    outcomes: list[Outcome]      # outcomes[i] is for claim.recipients[i]
    abort: str | None = None     # why the send must stop, if it must


async def attempt(transport: Transport, outgoing: Outgoing, claim: Claim,
                  limiter: RateLimiter) -> Attempt:
    recipients = claim.recipients
    outcomes: list[Outcome | None] = [None] * len(recipients)
    ready, messages = screen(outgoing, recipients, outcomes)
    if claim.repeat and len(messages) < len(recipients):
        reason = next(o.reason for o in outcomes if o is not None)
        stop = f"a batch to repeat cannot be made as it was sent: {reason}"
        return Attempt([Outcome(r.id, OutcomeKind.UNTRIED, code="message", reason=stop)
                        for r in recipients], stop)
    abort: str | None = None
    if messages:
        await limiter.acquire(len(messages))
        results, abort = await _send(transport, outgoing, messages, claim.batch_key)
        for i, outcome in zip(ready, results, strict=True):
            outcomes[i] = outcome
    assert all(o is not None for o in outcomes), "every recipient has an outcome"
    return Attempt(outcomes, abort)  # type: ignore[arg-type]


def screen(outgoing: Outgoing, recipients: Sequence[Recipient],
           outcomes: list[Outcome | None]) -> tuple[list[int], list[Personalized]]:
    """Personalize each recipient once; fail (in ``outcomes``) those that cannot be, and the
    second of an address already in the batch (providers that substitute per recipient key
    their values by address). Returns the indexes of the others and their messages."""
    ready: list[int] = []
    messages: list[Personalized] = []
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
        messages.append(person)
        ready.append(i)
    return ready, messages


async def _send(transport: Transport, outgoing: Outgoing, messages: list[Personalized],
                key: str) -> tuple[list[Outcome], str | None]:
    batch = [m.recipient for m in messages]
    with watch_requests() as watch:
        try:
            results = await transport.send_batch(outgoing, messages, batch_key=key)
        except FatalTransportError as exc:
            kind = OutcomeKind.UNKNOWN if exc.maybe_accepted else OutcomeKind.UNTRIED
            return [Outcome(r.id, kind, code=str(exc.status or ""), reason=f"not sent: {exc}")
                    for r in batch], str(exc)
        except BatchError as exc:
            return results_for(messages, exc), None
        except Exception as exc:  # a bug or the machine: record the batch, then stop
            reason = f"{transport.name}: {type(exc).__name__}: {one_line(exc)}"
            log.debug("the batch %s raised", key, exc_info=True)
            kind = OutcomeKind.UNTRIED if watch.used and not watch.sent else OutcomeKind.UNKNOWN
            return [Outcome(r.id, kind, code="error", reason=reason) for r in batch], reason
    if len(results) != len(batch) or any(res.subscriber_id != r.id
                                         for res, r in zip(results, batch, strict=False)):
        reason = (f"{transport.name}: {len(results)} results for a batch of {len(batch)}, "
                  "not one per recipient in order")
        return [Outcome(r.id, OutcomeKind.UNKNOWN, code="error", reason=reason)
                for r in batch], reason
    abort = next((f"{transport.name}: {res.reason}" for res in results if res.fatal), None)
    return results, abort


def one_line(exc: BaseException) -> str:
    """An error as one line of text."""
    return " ".join(str(exc).split()) or type(exc).__name__
