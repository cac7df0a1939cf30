"""The SMTP connection pool and pacing, against real aiosmtpd servers: a connection per batch
in flight, reused, capped by smtp_max_connections, replaced when idle or closed; rate_limit
and throttling replies slow the sending down instead of failing recipients."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from newsletter.audience.recipient import Recipient
from newsletter.errors import ConfigError
from newsletter.providers.base import BatchRetryable, OutcomeKind
from tests.smtp_servers import FakeClock, Handler, send, smtp_config, transport_for
from tests.transport_fixtures import make_outgoing, personalized, recipients

pytest_plugins = ("tests.smtp_fixtures",)


def plain_config(project, port, **overrides):
    return smtp_config(project, port, smtp_security="none", smtp_username="",
                       smtp_password="", **overrides)


def batches(count: int, size: int) -> list[list[Recipient]]:
    return [recipients(size, start=1 + i * size) for i in range(count)]


async def send_all(transport, outgoing, groups):
    return await asyncio.gather(*(
        transport.send_batch(outgoing, personalized(outgoing, batch), batch_key=f"b{i}")
        for i, batch in enumerate(groups)))


@pytest.mark.parametrize("pipelining", [False, True], ids=["lock-step", "pipelining"])
async def test_batches_in_flight_each_have_a_connection_and_send_at_once(
        project, start_server, pipelining):
    # The server holds every DATA until four sessions are in DATA together: with one shared
    # connection this could never happen, and the messages would come back 451.
    handler = Handler(pipelining=pipelining, barrier=4)
    port = start_server(handler)
    config = plain_config(project, port, concurrency="4")
    outgoing = make_outgoing(config)
    transport = transport_for(config, None)
    try:
        first = await send_all(transport, outgoing, batches(4, 3))
        handler.barrier = 0
        second = await send_all(transport, outgoing, batches(4, 3)[::-1])
    finally:
        await transport.aclose()

    assert all(r.kind == OutcomeKind.SENT for batch in first + second for r in batch)
    assert handler.connections == 4 and transport.connections == 4, "reused, not reopened"
    delivered = [m["to"][0] for m in handler.messages]
    assert sorted(delivered) == sorted([f"reader{i}@example.com" for i in range(1, 13)] * 2)


async def test_smtp_max_connections_caps_the_pool(project, start_server):
    handler = Handler(pipelining=True)
    port = start_server(handler)
    config = plain_config(project, port, concurrency="6", smtp_max_connections="2")
    outgoing = make_outgoing(config)
    transport = transport_for(config, None)
    try:
        results = await send_all(transport, outgoing, batches(6, 2))
    finally:
        await transport.aclose()
    assert all(r.kind == OutcomeKind.SENT for batch in results for r in batch)
    assert handler.connections == 2 and transport.connections == 2
    assert len(handler.messages) == 12


def test_smtp_max_connections_defaults_to_concurrency_and_must_be_positive(project):
    assert plain_config(project, 2525, concurrency="7").smtp_max_connections == 7
    assert plain_config(project, 2525, smtp_max_connections="3").smtp_max_connections == 3
    with pytest.raises(ConfigError, match="'smtp_max_connections' must be 1 or more"):
        plain_config(project, 2525, smtp_max_connections="0")


async def test_a_connection_idle_too_long_is_replaced(project, start_server):
    handler = Handler(pipelining=True)
    port = start_server(handler)
    config = plain_config(project, port)
    outgoing = make_outgoing(config)
    clock = FakeClock()
    transport = transport_for(config, None, clock=clock, idle_limit=30)
    try:
        await send(transport, outgoing, recipients(1))
        clock.now += 20
        await send(transport, outgoing, recipients(1, start=2))
        assert transport.connections == 1, "20 s idle: still fresh"
        clock.now += 31
        results = await send(transport, outgoing, recipients(1, start=3))
    finally:
        await transport.aclose()
    assert [r.kind for r in results] == [OutcomeKind.SENT]
    assert transport.connections == 2 and handler.connections == 2


@pytest.mark.parametrize("goodbye", [b"421 4.4.2 mail.test Error: timeout exceeded\r\n", b""],
                         ids=["421 then close", "silent close"])
async def test_a_connection_the_server_closed_while_idle_is_replaced(project, start_server,
                                                                     goodbye):
    handler = Handler(pipelining=True)
    port = start_server(handler)
    config = plain_config(project, port)
    outgoing = make_outgoing(config)
    transport = transport_for(config, None)
    try:
        await send(transport, outgoing, recipients(2))
        server = handler.servers[0]
        closed = asyncio.Event()
        loop = asyncio.get_running_loop()

        def say_goodbye():
            server.transport.write(goodbye)
            server.transport.close()
            loop.call_soon_threadsafe(closed.set)

        server.loop.call_soon_threadsafe(say_goodbye)
        await closed.wait()
        results = await send(transport, outgoing, recipients(2, start=3))
    finally:
        await transport.aclose()
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 2
    assert [m["to"][0] for m in handler.messages] == [
        f"reader{i}@example.com" for i in (1, 2, 3, 4)], "each exactly once"
    assert transport.connections == 2


# --- slowing down ----------------------------------------------------------------------------

async def test_rate_limit_spaces_every_message_not_just_batches(project, start_server):
    handler = Handler(pipelining=True)
    port = start_server(handler)
    config = plain_config(project, port, rate_limit="20")
    outgoing = make_outgoing(config)
    clock = FakeClock()
    transport = transport_for(config, None, clock=clock)
    try:
        results = await send_all(transport, outgoing, batches(2, 5))
    finally:
        await transport.aclose()
    assert all(r.kind == OutcomeKind.SENT for batch in results for r in batch)
    # Ten messages at 20 a second over two connections: one slot every 0.05 s, shared.
    assert clock.now - 1000.0 == pytest.approx(9 * 0.05)
    assert all(s == pytest.approx(0.05) for s in clock.sleeps)


@pytest.mark.parametrize("pipelining", [False, True], ids=["lock-step", "pipelining"])
async def test_a_throttling_reply_slows_the_sending_and_fails_no_one(project, start_server,
                                                                     pipelining):
    handler = Handler(pipelining=pipelining)
    handler.mail_script = ["", "", "451 4.7.1 Sending rate exceeded, slow down", ""]
    port = start_server(handler)
    config = plain_config(project, port)
    outgoing = make_outgoing(config)
    clock = FakeClock()
    transport = transport_for(config, None, clock=clock)
    try:
        results = await send(transport, outgoing, recipients(6))
    finally:
        await transport.aclose()

    assert [r.kind for r in results] == [OutcomeKind.SENT, OutcomeKind.SENT, OutcomeKind.RETRY] + \
        [OutcomeKind.SENT] * 3
    assert results[2].code == "451" and results[2].retry_after == pytest.approx(1.0)
    assert clock.sleeps[0] == pytest.approx(1.0), "everyone waited out the pause"
    assert transport.pacer.limit > 0, "and then went on at a measured, lower rate"
    assert len(clock.sleeps) >= 2, "the messages after the pause were spaced"
    assert len(handler.messages) == 5


async def test_a_421_at_the_greeting_waits_and_connects_again(project, start_server):
    handler = Handler(pipelining=True)
    port = start_server(handler)
    handler.refuse_greetings = 2  # set once the server is up: its start-up check connects too
    config = plain_config(project, port)
    clock = FakeClock()
    transport = transport_for(config, None, clock=clock)
    try:
        results = await send(transport, make_outgoing(config), recipients(2))
    finally:
        await transport.aclose()
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 2
    assert clock.sleeps == [pytest.approx(1.0), pytest.approx(2.0)], "1 s, then twice that"
    assert transport.pacer.limit == 0, "too many connections is no reason to send slower"


async def test_a_relay_that_keeps_refusing_connections_means_retry(project, start_server):
    handler = Handler(pipelining=True)
    port = start_server(handler)
    handler.refuse_greetings = 10
    config = plain_config(project, port)
    transport = transport_for(config, None)
    with pytest.raises(BatchRetryable, match="421"):
        await send(transport, make_outgoing(config), recipients(2))
    await transport.aclose()
    assert handler.messages == [] and handler.refuse_greetings == 7, "three tries"


class _UtfOutgoing:
    """The real Outgoing, except that recipient 1's envelope address has a UTF-8 local part
    (the message itself stays the one for its ASCII address)."""

    def __init__(self, outgoing):
        self._outgoing = outgoing

    def __getattr__(self, name):
        return getattr(self._outgoing, name)

    def personalize(self, recipient):
        person = self._outgoing.personalize(recipient)
        if recipient.id == 1:
            person = dataclasses.replace(person, email="josé@xn--bcher-kva.example")
        return person

    def message(self, person, *, dot_stuffed=False):
        if not person.email.isascii():
            person = self._outgoing.personalize(person.recipient)
        return self._outgoing.message(person, dot_stuffed=dot_stuffed)


@pytest.mark.parametrize("smtputf8", [True, False], ids=["SMTPUTF8", "no SMTPUTF8"])
async def test_a_utf8_envelope_address_needs_smtputf8(project, start_server, smtputf8):
    handler = Handler(pipelining=True)
    port = start_server(handler, enable_SMTPUTF8=smtputf8)
    config = plain_config(project, port)
    transport = transport_for(config, None)
    try:
        results = await send(transport, _UtfOutgoing(make_outgoing(config)), recipients(2))
    finally:
        await transport.aclose()
    if smtputf8:
        assert [r.kind for r in results] == [OutcomeKind.SENT, OutcomeKind.SENT]
        assert handler.messages[0]["to"] == ["josé@xn--bcher-kva.example"]
        assert "SMTPUTF8" in handler.messages[0]["options"]
    else:
        assert [r.kind for r in results] == [OutcomeKind.FAILED, OutcomeKind.SENT]
        assert results[0].code == "SMTPUTF8"
        assert [m["to"] for m in handler.messages] == [["reader2@example.com"]]
