"""SMTP end to end against a real aiosmtpd server on 127.0.0.1: STARTTLS, AUTH, implicit TLS,
plain, per-recipient refusals, dropped connections, and connection reuse."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy

import pytest

from newsletter.audience.recipient import Recipient
from newsletter.providers import make_transport
from newsletter.providers.base import BatchRetryable, FatalTransportError, OutcomeKind
from newsletter.providers.smtp import SmtpTransport, enhanced_code, is_bad_address
from tests.smtp_servers import (
    SENDER,
    authenticator,
    free_port,
    send,
    smtp_config,
    transport_for,
)
from tests.transport_fixtures import make_outgoing, recipients

pytest_plugins = ("tests.smtp_fixtures",)  # certs, start_server, handler, starttls_port

# --- the tests -------------------------------------------------------------------------------

async def test_starttls_auth_delivers_each_message_over_one_connection(project, handler,
                                                                       starttls_port, certs):
    config = smtp_config(project, starttls_port)
    outgoing = make_outgoing(config)
    batch = recipients(3) + [Recipient(id=9, email="zoe@bücher.example", name="Zoë Ü")]
    transport = transport_for(config, certs)
    try:
        results = await send(transport, outgoing, batch)
    finally:
        await transport.aclose()

    assert [r.kind for r in results] == [OutcomeKind.SENT] * 4, [r.reason for r in results]
    assert [r.message_id for r in results] == [
        outgoing.personalize(r).message_id for r in batch]
    assert handler.connections == 1 and transport.connections == 1
    assert all(handler.tls)
    assert [m["to"] for m in handler.messages] == [
        ["reader1@example.com"], ["reader2@example.com"], ["reader3@example.com"],
        ["zoe@xn--bcher-kva.example"]]
    links = set()
    for recipient, item in zip(batch, handler.messages, strict=True):
        assert item["from"] == SENDER and item["authenticated"]
        message = message_from_bytes(item["content"], policy=policy.default)
        assert all(not part.defects for part in message.walk()), recipient
        assert message["Message-ID"] == outgoing.personalize(recipient).message_id
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = outgoing.personalize(recipient).values["unsubscribe_url"]
        assert f"<{url}>" in message["List-Unsubscribe"]
        assert url in message.get_body(("plain",)).get_content()
        links.add(url)
    assert len(links) == 4


async def test_the_connection_is_reused_across_batches_and_reopened_if_dropped(
        project, handler, starttls_port, certs):
    config = smtp_config(project, starttls_port)
    outgoing = make_outgoing(config)
    transport = transport_for(config, certs)
    try:
        await send(transport, outgoing, recipients(2))
        await send(transport, outgoing, recipients(2, start=3))
        assert handler.connections == 1
        # The server closes the idle connection between batches.
        for server in handler.servers:
            server.loop.call_soon_threadsafe(server.transport.close)
        await asyncio.sleep(0.2)
        results = await send(transport, outgoing, recipients(2, start=5))
    finally:
        await transport.aclose()
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 2
    assert handler.connections == 2 and len(handler.messages) == 6


async def test_a_wrong_password_stops_the_send_without_showing_it(project, handler,
                                                                  starttls_port, certs):
    wrong = "not-the-password-0987"
    config = smtp_config(project, starttls_port, smtp_password=wrong)
    transport = transport_for(config, certs)
    try:
        with pytest.raises(FatalTransportError, match="authentication refused") as err:
            await send(transport, make_outgoing(config), recipients(2))
    finally:
        await transport.aclose()
    assert err.value.status == 535
    assert wrong not in str(err.value) and wrong not in err.value.body
    assert handler.messages == []


async def test_a_refused_recipient_fails_alone(project, handler, starttls_port, certs):
    handler.rcpt_replies["reader2@example.com"] = "550 5.1.1 <reader2@example.com>: no such user"
    handler.rcpt_replies["reader3@example.com"] = "451 4.7.1 Greylisted, try again later"
    handler.data_replies["reader4@example.com"] = "554 5.7.1 Message rejected as spam"
    config = smtp_config(project, starttls_port)
    transport = transport_for(config, certs)
    try:
        results = await send(transport, make_outgoing(config), recipients(5))
    finally:
        await transport.aclose()
    assert [r.kind for r in results] == [OutcomeKind.SENT, OutcomeKind.FAILED, OutcomeKind.RETRY,
                                         OutcomeKind.FAILED, OutcomeKind.SENT]
    assert results[1].bad_address and results[1].code == "550"
    assert "no such user" in results[1].reason
    assert results[2].code == "451" and not results[2].bad_address
    assert results[3].code == "554" and not results[3].bad_address
    assert [m["to"] for m in handler.messages] == [["reader1@example.com"],
                                                   ["reader5@example.com"]]
    assert handler.connections == 1, "a refusal resets the transaction, not the connection"


async def test_a_refused_sender_stops_the_send(project, handler, starttls_port, certs):
    handler.mail_reply = "553 5.7.1 Sender address rejected: not owned by user"
    config = smtp_config(project, starttls_port)
    transport = transport_for(config, certs)
    try:
        with pytest.raises(FatalTransportError, match="sender refused") as err:
            await send(transport, make_outgoing(config), recipients(2))
    finally:
        await transport.aclose()
    assert err.value.status == 553


async def test_a_connection_lost_during_data_is_unknown_for_that_recipient(
        project, handler, starttls_port, certs):
    handler.drop_during_data.add("reader2@example.com")
    config = smtp_config(project, starttls_port)
    transport = transport_for(config, certs)
    try:
        results = await send(transport, make_outgoing(config), recipients(3))
    finally:
        await transport.aclose()
    assert [r.kind for r in results] == [OutcomeKind.SENT, OutcomeKind.UNKNOWN, OutcomeKind.SENT]
    assert handler.connections == 2, "the next message reconnects"


async def test_a_timeout_during_data_is_unknown_and_the_next_message_reconnects(
        project, handler, starttls_port, certs):
    handler.data_delay["reader1@example.com"] = 1.0
    config = smtp_config(project, starttls_port)
    transport = SmtpTransport(config, tls_context=certs.client_context(), timeout=0.3)
    try:
        results = await send(transport, make_outgoing(config), recipients(2))
    finally:
        await transport.aclose()
    assert [r.kind for r in results] == [OutcomeKind.UNKNOWN, OutcomeKind.SENT]
    assert transport.connections == 2


async def test_a_connection_dropped_before_data_is_reopened_and_the_message_sent(
        project, handler, starttls_port, certs):
    config = smtp_config(project, starttls_port)
    outgoing = make_outgoing(config)
    transport = transport_for(config, certs)
    try:
        await send(transport, outgoing, recipients(1))
        handler.drop_at_mail = 1  # the kept connection turns out dead at the next MAIL
        results = await send(transport, outgoing, recipients(2, start=2))
    finally:
        await transport.aclose()
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 2
    assert [m["to"] for m in handler.messages] == [
        [f"reader{i}@example.com"] for i in (1, 2, 3)], "each message exactly once"
    assert transport.connections == 2


async def test_a_connection_that_keeps_dropping_means_retry(project, handler, starttls_port,
                                                            certs):
    handler.drop_at_mail = 2
    config = smtp_config(project, starttls_port)
    transport = transport_for(config, certs)
    with pytest.raises(BatchRetryable, match="connection lost twice"):
        await send(transport, make_outgoing(config), recipients(2))
    await transport.aclose()
    assert handler.messages == []


async def test_a_421_closes_the_connection_and_the_batch_goes_on(project, handler,
                                                                 starttls_port, certs):
    handler.rcpt_replies["reader1@example.com"] = "421 4.3.2 Service shutting down"
    config = smtp_config(project, starttls_port)
    transport = transport_for(config, certs)
    try:
        results = await send(transport, make_outgoing(config), recipients(2))
    finally:
        await transport.aclose()
    assert [r.kind for r in results] == [OutcomeKind.RETRY, OutcomeKind.SENT]
    assert transport.connections == 2


async def test_a_sender_refused_mid_batch_is_flagged_fatal(project, handler, starttls_port,
                                                          certs):
    handler.mail_ok_limit = 1
    config = smtp_config(project, starttls_port)
    transport = transport_for(config, certs)
    try:
        results = await send(transport, make_outgoing(config), recipients(3))
    finally:
        await transport.aclose()
    # Neither of the others was this recipient's doing: both are sent again later as new.
    assert [r.kind for r in results] == [OutcomeKind.SENT, OutcomeKind.UNTRIED,
                                         OutcomeKind.UNTRIED]
    assert results[1].fatal and results[1].code == "550"
    assert not results[2].fatal and "not sent" in results[2].reason


async def test_connection_refused_means_the_whole_batch_retries(project):
    config = smtp_config(project, free_port())
    transport = transport_for(config, None)
    with pytest.raises(BatchRetryable, match="could not connect"):
        await send(transport, make_outgoing(config), recipients(2))
    await transport.aclose()


async def test_certificates_are_verified_by_default(project, handler, starttls_port):
    config = smtp_config(project, starttls_port)
    transport = SmtpTransport(config, timeout=5)  # the system's trust store: our CA is not in it
    with pytest.raises(FatalTransportError, match="TLS failed"):
        await send(transport, make_outgoing(config), recipients(1))
    await transport.aclose()
    assert handler.messages == []


async def test_plain_smtp_without_tls_or_auth(project, handler, start_server):
    port = start_server(handler)  # no STARTTLS offered, no AUTH
    config = smtp_config(project, port, smtp_security="none", smtp_username="",
                         smtp_password="")
    transport = transport_for(config, None)
    try:
        results = await send(transport, make_outgoing(config), recipients(2))
    finally:
        await transport.aclose()
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 2
    assert handler.tls == [False, False] and len(handler.messages) == 2


async def test_starttls_demanded_but_not_offered_stops_the_send(project, handler,
                                                                start_server, certs):
    port = start_server(handler)
    config = smtp_config(project, port, smtp_username="", smtp_password="")
    transport = transport_for(config, certs)
    with pytest.raises(FatalTransportError, match="STARTTLS"):
        await send(transport, make_outgoing(config), recipients(1))
    await transport.aclose()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_implicit_tls_with_auth(project, handler, start_server, certs):
    # With implicit TLS aiosmtpd does not count the connection as TLS for auth_require_tls
    # (it only tracks STARTTLS), so that check is off here; the connection is TLS throughout.
    port = start_server(handler, ssl_context=certs.server_context(),
                        authenticator=authenticator, auth_required=True,
                        auth_require_tls=False)
    config = smtp_config(project, port, smtp_security="tls")
    transport = transport_for(config, certs)
    try:
        results = await send(transport, make_outgoing(config), recipients(2))
    finally:
        await transport.aclose()
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 2
    assert all(m["authenticated"] for m in handler.messages)
    unverified = SmtpTransport(config, timeout=5)  # the system's trust store
    with pytest.raises(FatalTransportError, match="TLS failed at connect"):
        await send(unverified, make_outgoing(config), recipients(1))
    await unverified.aclose()


async def test_more_than_100_messages_is_refused(project):
    transport = SmtpTransport(smtp_config(project, 2525))
    with pytest.raises(ValueError, match="maximum of 100"):
        await send(transport, make_outgoing(smtp_config(project, 2525)), recipients(101))


def test_make_transport_picks_smtp(project):
    assert isinstance(make_transport(smtp_config(project, 2525)), SmtpTransport)


@pytest.mark.parametrize(("code", "text", "bad"), [
    (550, "5.1.1 no such user", True),
    (550, "no such user", True),
    (551, "user not local", True),
    (553, "mailbox name not allowed", True),
    (554, "5.1.2 bad destination system", True),
    (550, "5.7.1 relaying denied", False),
    (552, "5.2.2 mailbox full", False),
    (554, "transaction failed", False),
])
def test_which_refusals_mean_a_bad_address(code, text, bad):
    assert is_bad_address(code, text) is bad


def test_enhanced_code():
    assert enhanced_code("5.1.1 <x@y>: unknown") == "5.1.1"
    assert enhanced_code("no code here") == ""
