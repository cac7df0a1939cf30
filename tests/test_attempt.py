"""One batch's attempt: each recipient personalized once, the transport handed exactly those
messages, and whatever the transport says recorded as it said it."""

from __future__ import annotations

import pytest

from newsletter.audience.recipient import Recipient
from newsletter.delivery.attempt import attempt
from newsletter.delivery.ledger.claiming import Claim
from newsletter.delivery.ratelimit import RateLimiter
from newsletter.providers.base import FatalTransportError, Outcome, OutcomeKind
from tests.transport_fixtures import make_config, make_outgoing

ZOE = Recipient(7, "zoe@bücher.example", "Zoë “Z” Ñúñez")
ANA = Recipient(8, "ana@bücher.example", "Ana Lúcia")
# The same mailbox as ANA: the domain in its IDNA form, the local part in capitals.
ANA_AGAIN = Recipient(9, "ANA@xn--bcher-kva.example", "Ana (work)")


class Counting:
    """An Outgoing that counts how often each recipient is personalized."""

    def __init__(self, outgoing):
        self._outgoing = outgoing
        self.calls: dict[int, int] = {}

    def __getattr__(self, name):
        return getattr(self._outgoing, name)

    def personalize(self, recipient):
        self.calls[recipient.id] = self.calls.get(recipient.id, 0) + 1
        return self._outgoing.personalize(recipient)


class Recording:
    """A transport that keeps what it was handed and accepts each message under its own
    Message-ID, or raises ``error``."""

    name = "recording"
    max_batch = 100
    idempotent = True

    def __init__(self, error: Exception | None = None):
        self.error = error
        self.batches: list[list] = []

    async def send_batch(self, outgoing, messages, *, batch_key):
        self.batches.append(list(messages))
        if self.error is not None:
            raise self.error
        return [Outcome(m.recipient.id, OutcomeKind.SENT, message_id=m.message_id)
                for m in messages]

    async def aclose(self):
        return None


@pytest.fixture
def outgoing(project):
    # A test send's Message-IDs are fresh on every personalization: a second one would differ.
    return Counting(make_outgoing(make_config(project, provider="eml"), test=True))


async def run(outgoing, transport, recipients, *, repeat=False):
    return await attempt(transport, outgoing, Claim("b1", recipients, repeat=repeat),
                         RateLimiter(0))


async def test_each_recipient_is_personalized_once_and_handed_over_as_it_was(outgoing):
    transport = Recording()
    done = await run(outgoing, transport, [ZOE, ANA])

    assert outgoing.calls == {ZOE.id: 1, ANA.id: 1}
    [handed] = transport.batches
    assert [m.recipient for m in handed] == [ZOE, ANA]
    assert [o.kind for o in done.outcomes] == [OutcomeKind.SENT] * 2 and done.abort is None
    assert [o.message_id for o in done.outcomes] == [m.message_id for m in handed]


async def test_the_second_of_one_mailbox_fails_alone_and_is_never_handed_over(outgoing):
    transport = Recording()
    done = await run(outgoing, transport, [ANA, ZOE, ANA_AGAIN])

    assert [m.recipient for m in transport.batches[0]] == [ANA, ZOE]
    assert [o.kind for o in done.outcomes] == [OutcomeKind.SENT, OutcomeKind.SENT,
                                               OutcomeKind.FAILED]
    twice = done.outcomes[2]
    assert twice.code == "duplicate" and f"subscriber {ANA.id}" in twice.reason
    assert outgoing.calls[ANA_AGAIN.id] == 1 and done.abort is None


async def test_a_row_no_message_can_carry_fails_alone_with_the_reason(outgoing):
    broken = Recipient(10, "eva@bücher.example", "Éva\u2028Bcc: someone")
    transport = Recording()
    done = await run(outgoing, transport, [broken, ZOE])

    assert [m.recipient for m in transport.batches[0]] == [ZOE]
    assert done.outcomes[0].kind == OutcomeKind.FAILED and done.outcomes[0].code == "message"
    assert "subscriber 10" in done.outcomes[0].reason
    assert done.outcomes[1].kind == OutcomeKind.SENT


async def test_a_repeat_that_cannot_be_made_as_sent_stops_the_send_and_sends_nothing(outgoing):
    broken = Recipient(10, "eva@bücher.example", "Éva\u2028Bcc: someone")
    transport = Recording()
    done = await run(outgoing, transport, [ZOE, broken], repeat=True)

    assert transport.batches == [], "a different request under the old key: never"
    assert [o.kind for o in done.outcomes] == [OutcomeKind.UNTRIED] * 2
    assert done.abort is not None and "subscriber 10" in done.abort


@pytest.mark.parametrize(("maybe_accepted", "kind"), [
    (False, OutcomeKind.UNTRIED), (True, OutcomeKind.UNKNOWN)])
async def test_a_fatal_error_is_unknown_only_when_a_request_may_have_been_accepted(
        outgoing, maybe_accepted, kind):
    error = FatalTransportError("recording", "sending paused for the account", status=403)
    error.maybe_accepted = maybe_accepted
    done = await run(outgoing, Recording(error), [ZOE, ANA])

    assert [o.kind for o in done.outcomes] == [kind] * 2
    assert done.abort is not None and "sending paused" in done.abort
