"""PIPELINING (RFC 2920) against real aiosmtpd servers: one write per message where the server
offers it, lock-step where it does not (checked by a server that refuses commands sent ahead
of their turn, as Postfix does), the same outcomes either way, and addresses that must never
reach the wire as they are."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from newsletter.audience.recipient import Recipient
from newsletter.delivery.attempt import attempt
from newsletter.delivery.ledger.claiming import Claim
from newsletter.delivery.ratelimit import RateLimiter
from newsletter.providers.base import OutcomeKind
from tests.smtp_servers import Handler, send, smtp_config, transport_for
from tests.transport_fixtures import make_outgoing, recipients

pytest_plugins = ("tests.smtp_fixtures",)


def plain_config(project, port, **overrides):
    return smtp_config(project, port, smtp_security="none", smtp_username="",
                       smtp_password="", **overrides)


async def send_through(project, port, batch, **overrides):
    config = plain_config(project, port, **overrides)
    outgoing = make_outgoing(config)
    transport = transport_for(config, None)
    try:
        return outgoing, transport, await send(transport, outgoing, batch)
    finally:
        await transport.aclose()


async def test_with_pipelining_each_message_goes_out_in_one_write(project, start_server):
    handler = Handler(pipelining=True)
    port = start_server(handler)
    _, transport, results = await send_through(project, port, recipients(3))

    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3
    assert [m["to"] for m in handler.messages] == [[f"reader{i}@example.com"] for i in (1, 2, 3)]
    # When the server reads MAIL, RCPT and DATA are already there: they came in the same write,
    # without waiting for MAIL's reply.
    for i, ahead in enumerate(handler.ahead_at_mail, start=1):
        assert ahead.startswith(f"RCPT TO:<reader{i}@example.com>\r\nDATA\r\n".encode()), ahead
    # And each message's envelope followed the previous message's content in one write: the
    # server had message 2's MAIL in hand when it took message 1's content.
    assert [ahead.split(b"\r\n")[:2] for ahead in handler.ahead_at_data] == [
        [b"MAIL FROM:<editors@fivethings.example.com>", b"RCPT TO:<reader2@example.com>"],
        [b"MAIL FROM:<editors@fivethings.example.com>", b"RCPT TO:<reader3@example.com>"],
        [b""]]
    assert handler.connections == 1 and transport.connections == 1


async def test_without_pipelining_the_client_waits_for_each_reply(project, start_server):
    handler = Handler(pipelining=False, strict=True)  # refuses commands sent ahead of time
    port = start_server(handler)
    _, _, results = await send_through(project, port, recipients(3))

    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3
    assert handler.out_of_sync == 0
    assert handler.ahead_at_mail == [b"", b"", b""]


async def test_the_strict_server_would_catch_a_client_that_pipelines_uninvited(project,
                                                                              start_server):
    # The check above is real: the same server, told the client may pipeline, sees commands
    # ahead; told it may not (strict), it refuses them. Here PIPELINING is offered, so the
    # client pipelines and the strict check stays quiet.
    handler = Handler(pipelining=True, strict=True)
    port = start_server(handler)
    await send_through(project, port, recipients(2))
    assert all(ahead for ahead in handler.ahead_at_mail) and handler.out_of_sync == 0


@pytest.mark.parametrize("pipelining", [False, True], ids=["lock-step", "pipelining"])
async def test_a_refused_transaction_is_reset_and_the_next_one_goes_through(
        project, start_server, pipelining):
    handler = Handler(pipelining=pipelining, strict=not pipelining)
    handler.rcpt_replies["reader1@example.com"] = "550 5.1.1 no such user"
    handler.mail_script = ["", "", "452 4.3.1 Insufficient system storage"]
    port = start_server(handler)
    _, transport, results = await send_through(project, port, recipients(4))

    assert [r.kind for r in results] == [OutcomeKind.FAILED, OutcomeKind.SENT, OutcomeKind.RETRY,
                                           OutcomeKind.SENT]
    assert results[0].bad_address and results[2].code == "452"
    assert results[2].retry_after is None, "452 4.3.1 is not the relay asking us to slow down"
    assert [m["to"] for m in handler.messages] == [["reader2@example.com"],
                                                   ["reader4@example.com"]]
    assert handler.out_of_sync == 0 and transport.connections == 1


async def test_leading_dots_and_odd_characters_arrive_exactly_as_built(project, start_server):
    # Stock aiosmtpd un-stuffs line by line, as RFC 5321 says; what it hands over must be the
    # message the builder made, byte for byte. A value starts a quoted-printable line, so a
    # name that starts with a dot puts a dot at the start of a line.
    handler = Handler(pipelining=True)
    port = start_server(handler)
    batch = [
        Recipient(1, "dot@example.com", ".Dot ..Leader"),
        Recipient(2, "jose@bücher.example", "José “Pepe” Ñandú 🎉"),
        Recipient(3, "lone@example.com", "."),
        Recipient(4, "dots@example.com", "... ’quoted’"),
    ]
    outgoing, _, results = await send_through(project, port, batch)

    assert [r.kind for r in results] == [OutcomeKind.SENT] * 4, [r.reason for r in results]
    assert [m["to"] for m in handler.messages] == [
        ["dot@example.com"], ["jose@xn--bcher-kva.example"], ["lone@example.com"],
        ["dots@example.com"]]
    for recipient, item in zip(batch, handler.messages, strict=True):
        expected = outgoing.message(outgoing.personalize(recipient))
        assert strip_date(item["content"]) == strip_date(expected), recipient.name
        parsed = message_from_bytes(item["content"], policy=policy.default)
        assert not parsed.defects
        assert recipient.name.split()[0] in parsed.get_body(("plain",)).get_content()


def strip_date(message: bytes) -> bytes:
    start = message.index(b"\r\nDate: ") + 2
    return message[:start] + message[message.index(b"\r\n", start) + 2:]


@pytest.mark.parametrize("recipient", [
    Recipient(1, "evil@example.com>\r\nRCPT TO:<victim@example.com", "Mallory"),
    Recipient(1, "nul\x00@example.com", "Mallory"),
    Recipient(1, "vt\x0b@example.com", "Mallory"),
    Recipient(1, "lf@example.com\nDATA", "Mallory"),
    Recipient(1, "josé@bücher.example", "José"),  # a UTF-8 local part: no header can carry it
    Recipient(1, "victim@example.com", "Line\u2028Separator"),
    Recipient(1, "victim@example.com", "Bell\x07 Nul\x00"),
], ids=["CRLF", "NUL", "VT", "LF", "UTF-8 local part", "U+2028 name", "control name"])
async def test_a_recipient_no_message_can_carry_fails_alone(project, start_server, recipient):
    # Through the send's own attempt: the sender personalizes (and refuses what it cannot),
    # the transport refuses what no message or envelope can carry.
    handler = Handler(pipelining=True)
    port = start_server(handler)
    config = plain_config(project, port)
    transport = transport_for(config, None)
    claim = Claim("b1", [recipient, *recipients(1, start=2)])
    try:
        done = await attempt(transport, make_outgoing(config), claim, RateLimiter(0))
    finally:
        await transport.aclose()

    results = done.outcomes
    assert [r.kind for r in results] == [OutcomeKind.FAILED, OutcomeKind.SENT]
    assert done.abort is None
    assert "subscriber" in results[0].reason or "address" in results[0].reason
    assert [m["to"] for m in handler.messages] == [["reader2@example.com"]]
    assert not any(b"victim" in ahead for ahead in handler.ahead_at_mail)
