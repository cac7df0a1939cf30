"""SMTP: one message per recipient, over a small pool of reused connections, pipelined.

Each batch in flight has a connection of its own: the pool holds at most
``smtp_max_connections`` (default: ``concurrency``; relays limit connections per client), and
a connection goes back to it after its batch, for the next. One that the server closed, one
that broke, and one idle for more than ``idle_limit`` seconds is replaced by a new one. The
security is ``smtp_security``: ``starttls`` (connect in plain text, then STARTTLS, which the
server must offer), ``tls`` (implicit TLS, usually port 465) or ``none``. Certificates are
verified unless the constructor is given ``validate_certs=False`` or its own ``tls_context``
(tests). With ``smtp_username`` set, AUTH follows (aiosmtplib picks the method).

aiosmtplib opens, secures and authenticates each connection; the mail transactions then run
over ``_smtp_session`` so that, where the server offers PIPELINING (RFC 2920), a message costs
one write and one round trip (``_smtp_batch``); otherwise each command waits for its reply.
Each message is ``Outgoing.message(person)``, dot-stuffed by the builder, sent with envelope
from ``from_address`` and envelope to the recipient's address (domain in IDNA form; a
non-ASCII local part needs the server's SMTPUTF8). With ``dkim_selector`` and
``dkim_private_key`` set, each message is DKIM-signed (``_dkim``) as the receiver will see
it, and dot-stuffed after, signature field included. Every connection shares one ``Pacer``:
at most ``rate_limit`` messages a second, and slower for a while after a throttling reply.

Outcomes, the same on every connection:

    opening a connection
        refused, reset, timed out                       BatchRetryable: the whole batch retry
        greeting, EHLO or AUTH 421 or 4xx 4.7.x         slow down, try again (3 tries), then
                                                        BatchRetryable
        TLS handshake or certificate failure,           FatalTransportError: every message
        STARTTLS not offered, AUTH refused (535 and     would fail alike
        other 5xx) or not offered, greeting 5xx
        other 4xx to STARTTLS or AUTH                   BatchRetryable
    one message
        250 after the content                           sent; message_id is our Message-ID
        MAIL FROM 5xx                                   FatalTransportError: the sender is
                                                        refused, so every message would be
        RCPT TO 5xx                                     failed; bad_address for 550, 551, 553
                                                        (unless the enhanced code is 5.7.x,
                                                        a policy refusal) and for any 5.1.x
        DATA 5xx (before or after the content)          failed (the content was refused)
        4xx at MAIL, RCPT or DATA                       retry (421 also closes the connection);
                                                        a throttling one (421, 4.7.x) also
                                                        slows every connection down
        a reply out of place (before the content)       retry; the connection is closed
        a reply out of place after the content          unknown; the connection is closed
        connection lost before the content was sent     nothing was accepted: reconnect and
                                                        send this message again, once
        connection lost or timeout after the content    unknown for this recipient: the
                                                        server may have queued it
        SMTPUTF8 needed but not offered                 failed
        an address with a control character             failed

A batch-wide error raises only while nothing in the batch has been decided. Once some
messages have their outcome, a later failure to reconnect makes the remaining recipients
``untried`` (a fatal one marks its recipient ``fatal=True``), so the results stay truthful.
After a failed transaction the connection is reset (RSET) before the next message; if that
fails, it is closed and the next message reconnects. SMTP has no idempotency key, so nothing
whose outcome is unknown is resent.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import aiosmtplib

from ..audience.addresses import envelope_address
from ..config import Config
from ..errors import ConfigError
from ..message.model import Outgoing, Personalized
from ._dkim import DkimSigner, signer_for
from ._smtp_batch import BatchRun
from ._smtp_pace import Pacer
from ._smtp_session import Session
from ._smtp_wire import check_address, enhanced_code, is_bad_address, is_throttling, unstuff
from .base import (
    BatchRetryable,
    ErrorT,
    FatalTransportError,
    Outcome,
    TransportError,
    check_batch,
    redact,
)
from .info import ProviderInfo

__all__ = ["SmtpTransport", "enhanced_code", "is_bad_address", "is_throttling"]

NAME = "smtp"
MAX_BATCH = 100
DEFAULT_TIMEOUT = 30.0
IDLE_LIMIT = 30.0   # seconds a pooled connection may sit unused before it is replaced
CONNECT_TRIES = 3   # openings refused with a throttling reply, before the batch gives up


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _greet(smtp: aiosmtplib.SMTP) -> None:
    """EHLO, or HELO for a server that knows only RFC 821."""
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError as exc:
        if exc.code < 500:
            raise
        await smtp.helo()


class SmtpTransport:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = False

    def __init__(self, config: Config, *, tls_context: ssl.SSLContext | None = None,
                 validate_certs: bool = True, timeout: float = DEFAULT_TIMEOUT,
                 local_hostname: str | None = None, idle_limit: float = IDLE_LIMIT,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        config.require("smtp_host", "from_address")
        self.host = config.smtp_host
        self.port = config.smtp_port
        self.security = config.smtp_security
        self.username = config.smtp_username
        self.password = config.smtp_password
        self.sender = envelope_address(config.from_address)
        try:
            check_address(self.sender, "sender")
        except ValueError as exc:
            raise ConfigError(f"config key 'from_address': {exc} ({config.source})") from None
        self.tls_context = tls_context
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.idle_limit = idle_limit
        self.max_connections = config.smtp_max_connections or config.concurrency
        self.secrets = tuple(s for s in (config.smtp_password,) if s)
        self.signer: DkimSigner | None = signer_for(config)
        self.pacer = Pacer(config.rate_limit, clock=clock, sleep=sleep)
        self.connections = 0  # opened so far
        self._clock = clock
        self._idle: list[Session] = []
        self._slots = asyncio.Semaphore(self.max_connections)

    # --- errors -----------------------------------------------------------------------------

    def error(self, cls: type[ErrorT], message: str, code: int | None = None,
              text: str = "") -> ErrorT:
        return cls(NAME, f"{message} ({self.host}:{self.port})", status=code, body=text,
                   secrets=self.secrets, status_label="SMTP")

    def reason(self, text: str) -> str:
        return redact(text, self.secrets)

    # --- connections ------------------------------------------------------------------------

    async def open_session(self) -> Session:
        """A new connection, ready for mail; a throttling refusal waits and tries again."""
        for attempt in range(1, CONNECT_TRIES + 1):
            ticket = await self.pacer.resume()
            try:
                return await self._connect()
            except BatchRetryable as exc:
                if attempt == CONNECT_TRIES or not (
                        exc.status and is_throttling(exc.status, exc.body)):
                    raise
                self.pacer.throttled(ticket, slower=False)
        raise AssertionError("unreachable")

    async def _connect(self) -> Session:
        smtp = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, use_tls=self.security == "tls",
            start_tls=False, validate_certs=self.validate_certs, tls_context=self.tls_context,
            timeout=self.timeout, local_hostname=self.local_hostname,
        )
        stage = "connect"
        try:
            await smtp.connect()
            if self.security == "starttls":
                stage = "STARTTLS"
                await smtp.starttls()
            if self.username:
                stage = "AUTH"
                await smtp.login(self.username, self.password)
            if smtp.is_ehlo_or_helo_needed:  # no STARTTLS or AUTH asked for it yet
                stage = "EHLO"
                await _greet(smtp)
        except BaseException as exc:
            smtp.close()
            if isinstance(exc, Exception):
                raise self._connect_error(stage, exc) from None
            raise
        self.connections += 1
        return Session.take_over(smtp, timeout=self.timeout, now=self._clock())

    def _connect_error(self, stage: str, exc: Exception) -> TransportError:
        if _is_tls_failure(exc):
            return self.error(FatalTransportError, f"TLS failed at {stage}", text=str(exc))
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            transient = 400 <= exc.code < 500
            if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
                what = "authentication refused"
            elif isinstance(exc, aiosmtplib.SMTPConnectResponseError):
                what = "server refused the connection"
            else:
                what = f"{stage} refused"
            cls = BatchRetryable if transient else FatalTransportError
            return self.error(cls, what, exc.code, exc.message)
        if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPTimeoutError
                      | aiosmtplib.SMTPServerDisconnected | OSError):
            what = "could not connect" if stage == "connect" else f"connection lost at {stage}"
            return self.error(BatchRetryable, what, text=str(exc))
        # STARTTLS or AUTH not offered, no usable AUTH method, and the like.
        return self.error(FatalTransportError, f"{stage} failed", text=str(exc))

    def _take_idle(self) -> Session | None:
        now = self._clock()
        while self._idle:
            session = self._idle.pop()
            if session.usable and now - session.last_used <= self.idle_limit:
                return session
            session.close()  # gone, or idle so long that the server may be closing it
        return None

    def _give_back(self, session: Session | None, clean: bool) -> None:
        if session is None:
            return
        if clean and session.usable:
            session.last_used = self._clock()
            self._idle.append(session)
        else:
            session.close()

    # --- a batch ----------------------------------------------------------------------------

    async def send_batch(self, outgoing: Outgoing, messages: Sequence[Personalized], *,
                         batch_key: str) -> list[Outcome]:
        check_batch(self, messages)
        async with self._slots:
            run = BatchRun(self, messages, self._take_idle(), self._message_maker(outgoing))
            clean = False
            try:
                results = await run.run()
                clean = True
                return results
            finally:
                # A batch cut short (cancelled) may leave replies due: never reuse that one.
                self._give_back(run.session, clean and run.in_data is None)

    def _message_maker(self, outgoing: Outgoing) -> Callable[[Personalized], bytes]:
        """person -> the message as it goes after DATA: signed (if configured), dot-stuffed."""
        if self.signer is None:
            return partial(outgoing.message, dot_stuffed=True)
        header = self.signer.header

        def signed(person: Personalized) -> bytes:
            # Signed as the receiver sees it, unstuffed; the signature field itself needs no
            # stuffing (its lines start with a name or a space).
            stuffed = outgoing.message(person, dot_stuffed=True)
            return header(unstuff(stuffed)) + stuffed

        return signed

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(session.quit() for session in idle))


INFO = ProviderInfo(
    name=NAME, transport=SmtpTransport,
    settings=("smtp_host", "smtp_port", "smtp_username", "smtp_password", "smtp_security",
              "smtp_max_connections", "dkim_selector", "dkim_private_key", "dkim_domain"),
    default_endpoint=lambda config: f"smtp://{config.smtp_host}:{config.smtp_port}")
