"""Real SMTP servers for the SMTP tests: aiosmtpd on 127.0.0.1, a throwaway CA for TLS, a
handler that answers as each test tells it, and a fake clock for the transport's pauses.

The fixtures that start them are in ``tests.smtp_fixtures``."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from newsletter.providers.smtp import SmtpTransport
from tests.transport_fixtures import make_config, personalized

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


def make_certs(folder: Path) -> Certs:
    """A throwaway CA and a server certificate for 127.0.0.1, written into ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
    """Collects messages; answers RCPT and DATA as told per address.

    ``pipelining`` offers PIPELINING in the EHLO reply; ``strict`` refuses commands that
    arrive before the reply to the one before (as Postfix does when PIPELINING is not
    offered); ``ahead_at_mail`` records, for each MAIL, the bytes already received after it
    (what a pipelining client sent in the same write).
    """

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    mail_reply: str = ""
    mail_script: list[str] = field(default_factory=list)  # replies for the next MAILs ("": 250)
    mail_ok_limit: int | None = None   # after this many accepted MAILs, refuse the sender
    drop_at_mail: int = 0              # abort the connection at the next N MAIL commands
    drop_during_data: set[str] = field(default_factory=set)
    data_delay: dict[str, float] = field(default_factory=dict)
    pipelining: bool = False
    strict: bool = False
    barrier: int = 0                   # DATA waits until this many sessions are in DATA at once
    refuse_greetings: int = 0          # answer the next N connections 421 and close them
    mails: int = 0
    messages: list[dict] = field(default_factory=list)
    peers: list = field(default_factory=list)       # one entry per connection that sent mail
    servers: list = field(default_factory=list)
    tls: list = field(default_factory=list)
    ahead_at_mail: list[bytes] = field(default_factory=list)
    ahead_at_data: list[bytes] = field(default_factory=list)  # after each message's content
    out_of_sync: int = 0
    _in_data: set = field(default_factory=set)
    _all_in: asyncio.Event | None = None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    def _ahead(self, server) -> bytes:
        return bytes(server._reader._buffer)  # received, not yet read by the server

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if session.peer not in self.peers:
            self.peers.append(session.peer)
            self.servers.append(server)
        self.tls.append(session.ssl is not None)
        ahead = self._ahead(server)
        self.ahead_at_mail.append(ahead)
        if self.strict and not self.pipelining and ahead:
            self.out_of_sync += 1
            return "554 5.5.0 Error: SMTP protocol synchronization"
        if self.drop_at_mail:
            self.drop_at_mail -= 1
            server.transport.abort()
            return "250 OK"
        if self.mail_reply:
            return self.mail_reply
        scripted = self.mail_script.pop(0) if self.mail_script else ""
        if scripted:
            return scripted
        if self.mail_ok_limit is not None and self.mails >= self.mail_ok_limit:
            return "550 5.7.0 Daily sending limit exceeded"
        self.mails += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.strict and not self.pipelining and self._ahead(server):
            self.out_of_sync += 1
            return "554 5.5.0 Error: SMTP protocol synchronization"
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.ahead_at_data.append(self._ahead(server))
        rcpt = envelope.rcpt_tos[0]
        if rcpt in self.drop_during_data:
            server.transport.abort()
            return "250 OK"
        if self.barrier:
            await self._wait_for_others(session)
        if rcpt in self.data_delay:
            await asyncio.sleep(self.data_delay[rcpt])
        reply = self.data_replies.get(rcpt)
        if reply:
            return reply
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "content": envelope.original_content,
                              "options": list(envelope.mail_options),
                              "peer": session.peer,
                              "authenticated": session.authenticated})
        return "250 2.0.0 Ok: queued"

    async def _wait_for_others(self, session) -> None:
        if self._all_in is None:
            self._all_in = asyncio.Event()
        self._in_data.add(session.peer)
        if len(self._in_data) >= self.barrier:
            self._all_in.set()
        await asyncio.wait_for(self._all_in.wait(), 10)

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


class RefusingSMTP(SMTP):
    """aiosmtpd's server, answering 421 at the greeting while the handler says so."""

    async def _handle_client(self) -> None:
        if self.event_handler.refuse_greetings > 0:
            self.event_handler.refuse_greetings -= 1
            await self.push("421 4.7.0 Too many connections from your host, try again later")
            self.transport.close()
            return
        await super()._handle_client()


class RefusingController(Controller):
    """aiosmtpd's Controller, serving RefusingSMTP."""

    def factory(self):
        return RefusingSMTP(self.handler, **self.SMTP_kwargs)


def smtp_config(project, port: int, **overrides):
    values = {"provider": "smtp", "smtp_host": "127.0.0.1", "smtp_port": str(port),
              "smtp_security": "starttls", "smtp_username": USER, "smtp_password": PASSWORD}
    values.update(overrides)
    return make_config(project, **values)


class FakeClock:
    """A monotonic clock that moves only when the code under test sleeps (recorded), or,
    ``frozen``, not at all (then each sleep is how far ahead its caller was scheduled)."""

    def __init__(self, *, frozen: bool = False) -> None:
        self.now = 1000.0
        self.frozen = frozen
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if not self.frozen:
            self.now += seconds
        await asyncio.sleep(0)


def transport_for(config, certs: Certs | None, *, clock: FakeClock | None = None,
                  **kwargs) -> SmtpTransport:
    """The transport under test, on a fake clock: a pause it takes is recorded, not slept."""
    context = certs.client_context() if certs is not None else None
    clock = clock or FakeClock()
    return SmtpTransport(config, tls_context=context, timeout=5, clock=clock,
                         sleep=clock.sleep, **kwargs)


async def send(transport, outgoing, batch):
    return await transport.send_batch(outgoing, personalized(outgoing, batch), batch_key="b1")
