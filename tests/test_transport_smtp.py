"""SMTP end to end against a real aiosmtpd server on 127.0.0.1: STARTTLS, AUTH, implicit TLS,
plain, per-recipient refusals, dropped connections, and connection reuse."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from newsletter.audience.recipient import Recipient
from newsletter.providers import make_transport
from newsletter.providers.base import BatchRetryable, FatalTransportError, Status
from newsletter.providers.smtp import SmtpTransport, enhanced_code, is_bad_address
from tests.transport_fixtures import make_config, make_outgoing, recipients

USER = "mailer"
PASSWORD = "s3cret-smtp-password-42"
SENDER = "editors@fivethings.example.com"  # from_address in the sample newsletter.toml


# --- certificates: a throwaway CA and a server certificate for 127.0.0.1 ---------------------

@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = tmp_path_factory.mktemp("certs")
    now = dt.datetime.now(dt.UTC)

    def build(subject, issuer, key, signer, *, ca: bool):
        public = key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                signer.public_key()), critical=False)
        )
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
            ]), critical=False).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("newsletter test CA", "newsletter test CA", ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("127.0.0.1", "newsletter test CA", key, ca_key, ca=False)
    paths = Certs(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return paths


# --- the server ------------------------------------------------------------------------------

@dataclass
class Handler:
    """Collects messages; answers RCPT and DATA as told per address."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    mail_reply: str = ""
    mail_ok_limit: int | None = None   # after this many accepted MAILs, refuse the sender
    drop_at_mail: int = 0              # abort the connection at the next N MAIL commands
    drop_during_data: set[str] = field(default_factory=set)
    data_delay: dict[str, float] = field(default_factory=dict)
    mails: int = 0
    messages: list[dict] = field(default_factory=list)
    peers: list = field(default_factory=list)       # one entry per connection that sent mail
    servers: list = field(default_factory=list)
    tls: list = field(default_factory=list)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if session.peer not in self.peers:
            self.peers.append(session.peer)
            self.servers.append(server)
        self.tls.append(session.ssl is not None)
        if self.drop_at_mail:
            self.drop_at_mail -= 1
            server.transport.abort()
            return "250 OK"
        if self.mail_reply:
            return self.mail_reply
        if self.mail_ok_limit is not None and self.mails >= self.mail_ok_limit:
            return "550 5.7.0 Daily sending limit exceeded"
        self.mails += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        rcpt = envelope.rcpt_tos[0]
        if rcpt in self.drop_during_data:
            server.transport.abort()
            return "250 OK"
        if rcpt in self.data_delay:
            await asyncio.sleep(self.data_delay[rcpt])
        reply = self.data_replies.get(rcpt)
        if reply:
            return reply
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "content": envelope.original_content,
                              "authenticated": session.authenticated})
        return "250 2.0.0 Ok: queued"

    @property
    def connections(self) -> int:
        return len(self.peers)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
          and auth_data.password == PASSWORD.encode())
    # A failure must say handled=False, or aiosmtpd leaves the client waiting.
    return AuthResult(success=True) if ok else AuthResult(success=False, handled=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def start_server():
    controllers = []

    def start(handler: Handler, **kwargs) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port,
                                server_hostname="mail.test", ready_timeout=5, **kwargs)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def starttls_port(start_server, handler, certs) -> int:
    """STARTTLS required, AUTH PLAIN/LOGIN offered only after it."""
    return start_server(handler, tls_context=certs.server_context(), require_starttls=True,
                        authenticator=authenticator, auth_required=True,
                        auth_require_tls=True)


def smtp_config(project, port: int, **overrides):
    values = {"provider": "smtp", "smtp_host": "127.0.0.1", "smtp_port": str(port),
              "smtp_security": "starttls", "smtp_username": USER, "smtp_password": PASSWORD}
    values.update(overrides)
    return make_config(project, **values)


def transport_for(config, certs: Certs | None, **kwargs) -> SmtpTransport:
    context = certs.client_context() if certs is not None else None
    return SmtpTransport(config, tls_context=context, timeout=5, **kwargs)


async def send(transport, outgoing, batch):
    return await transport.send_batch(outgoing, batch, batch_key="b1")


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

    assert [r.status for r in results] == [Status.SENT] * 4, [r.reason for r in results]
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
    assert [r.status for r in results] == [Status.SENT] * 2
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
    assert [r.status for r in results] == [
        Status.SENT, Status.FAILED, Status.RETRY, Status.FAILED, Status.SENT]
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
    assert [r.status for r in results] == [Status.SENT, Status.UNKNOWN, Status.SENT]
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
    assert [r.status for r in results] == [Status.UNKNOWN, Status.SENT]
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
    assert [r.status for r in results] == [Status.SENT] * 2
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
    assert [r.status for r in results] == [Status.RETRY, Status.SENT]
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
    assert [r.status for r in results] == [Status.SENT, Status.RETRY, Status.RETRY]
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
    assert [r.status for r in results] == [Status.SENT] * 2
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
    assert [r.status for r in results] == [Status.SENT] * 2
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
