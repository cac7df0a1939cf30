"""SMTP: one message per recipient over one reused connection (aiosmtplib).

The connection is opened on the first message and kept for every later message and batch;
batches on the same transport take turns (a lock), as SMTP commands cannot interleave. The
security is ``smtp_security``: ``starttls`` (connect in plain text, then STARTTLS, which the
server must offer), ``tls`` (implicit TLS, usually port 465) or ``none``. Certificates are
verified unless the constructor is given ``validate_certs=False`` or its own ``tls_context``
(tests). With ``smtp_username`` set, AUTH follows (aiosmtplib picks the method).

Each message is ``MessageBuilder.build(recipient, message_id)``, sent with envelope from
``from_address`` and envelope to the recipient's address (domain in IDNA form; a non-ASCII
local part needs the server's SMTPUTF8). Outcomes:

    opening the connection
        refused, reset, timed out, greeting 4xx         BatchRetryable: the whole batch retry
        TLS handshake or certificate failure,           FatalTransportError: every message
        STARTTLS not offered, AUTH refused (535 and     would fail alike
        other 5xx) or not offered, greeting 5xx
        AUTH or STARTTLS answered 4xx                   BatchRetryable
    one message
        250 after DATA                                  sent; message_id is our Message-ID
        MAIL FROM 5xx                                   FatalTransportError: the sender is
                                                        refused, so every message would be
        RCPT TO 5xx                                     failed; bad_address for 550, 551, 553
                                                        (unless the enhanced code is 5.7.x,
                                                        a policy refusal) and for any 5.1.x
        DATA 5xx (before or after the content)          failed (the content was refused)
        4xx at MAIL, RCPT or DATA                       retry (421 also closes the connection)
        connection lost before DATA                     nothing was accepted: reconnect and
                                                        send this message again, once
        connection lost or timeout during DATA          unknown for this recipient: the
                                                        server may have queued it
        SMTPUTF8 needed but not offered                 failed

A batch-wide error raises only while nothing in the batch has been decided. Once some
messages have their outcome, a later failure to reconnect makes the remaining recipients
``retry`` (a fatal one marks its recipient ``fatal=True``), so the results stay truthful.
After a failed transaction the connection is reset (RSET) before the next message; if that
fails, it is closed and the next message reconnects. SMTP has no idempotency key, so nothing
whose outcome is unknown is resent.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence

import aiosmtplib

from ..audience.recipient import Recipient, envelope_address
from ..config import Config
from .base import (
    BatchRetryable,
    FatalTransportError,
    Outgoing,
    SendResult,
    Status,
    TransportError,
    check_batch,
    redact,
)

NAME = "smtp"
MAX_BATCH = 100
DEFAULT_TIMEOUT = 30.0
BAD_ADDRESS_CODES = frozenset({550, 551, 553})
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


def enhanced_code(text: str) -> str:
    """The RFC 3463 enhanced status code at the start of a reply's text, or ''."""
    found = _ENHANCED.match(text)
    return ".".join(found.groups()) if found else ""


def is_bad_address(code: int, text: str) -> bool:
    """Whether a permanent RCPT refusal says the address itself is bad."""
    enhanced = enhanced_code(text)
    if enhanced.startswith("5.1."):
        return True
    return code in BAD_ADDRESS_CODES and not enhanced.startswith("5.7.")


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _Dropped(Exception):
    """The connection was lost before DATA: the message was certainly not accepted."""


class SmtpTransport:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = False

    def __init__(self, config: Config, *, tls_context: ssl.SSLContext | None = None,
                 validate_certs: bool = True, timeout: float = DEFAULT_TIMEOUT,
                 local_hostname: str | None = None):
        config.require("smtp_host", "from_address")
        self.host = config.smtp_host
        self.port = config.smtp_port
        self.security = config.smtp_security
        self.username = config.smtp_username
        self.password = config.smtp_password
        self.from_address = envelope_address(config.from_address)
        self.tls_context = tls_context
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.secrets = tuple(s for s in (config.smtp_password,) if s)
        self.connections = 0  # opened so far
        self._smtp: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    # --- errors -----------------------------------------------------------------------------

    def _error(self, cls: type[TransportError], message: str, code: int | None = None,
               text: str = "") -> TransportError:
        return cls(NAME, f"{message} ({self.host}:{self.port})", status=code, body=text,
                   secrets=self.secrets, status_label="SMTP")

    def _reason(self, code: int, text: str) -> str:
        return redact(f"{code} {text}", self.secrets)

    # --- the connection ---------------------------------------------------------------------

    async def _connect(self) -> aiosmtplib.SMTP:
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
        except BaseException as exc:
            smtp.close()
            if isinstance(exc, Exception):
                raise self._connect_error(stage, exc) from None
            raise
        self.connections += 1
        return smtp

    def _connect_error(self, stage: str, exc: Exception) -> TransportError:
        if _is_tls_failure(exc):
            return self._error(FatalTransportError, f"TLS failed at {stage}", text=str(exc))
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            transient = 400 <= exc.code < 500
            if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
                what = "authentication refused"
            elif isinstance(exc, aiosmtplib.SMTPConnectResponseError):
                what = "server refused the connection"
            else:
                what = f"{stage} refused"
            cls = BatchRetryable if transient else FatalTransportError
            return self._error(cls, what, exc.code, exc.message)
        if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPTimeoutError
                      | aiosmtplib.SMTPServerDisconnected | OSError):
            what = "could not connect" if stage == "connect" else f"connection lost at {stage}"
            return self._error(BatchRetryable, what, text=str(exc))
        # STARTTLS or AUTH not offered, no usable AUTH method, and the like.
        return self._error(FatalTransportError, f"{stage} failed", text=str(exc))

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is None or not self._smtp.is_connected:
            self._smtp = None
            self._smtp = await self._connect()
        return self._smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
        self._smtp = None

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._drop()

    # --- one message ------------------------------------------------------------------------

    async def _send_one(self, smtp: aiosmtplib.SMTP, recipient: Recipient, message: bytes,
                        message_id: str) -> SendResult:
        """One transaction. Raises _Dropped when the connection went before DATA, and
        FatalTransportError when the server refuses our sender."""
        rcpt = envelope_address(recipient.email)
        options: list[str] = []
        encoding = "ascii"
        if not (rcpt.isascii() and self.from_address.isascii()):
            if not smtp.supports_extension("smtputf8"):
                return SendResult(recipient.id, Status.FAILED, code="SMTPUTF8",
                                  reason="the address needs SMTPUTF8, which the server lacks")
            options, encoding = ["SMTPUTF8"], "utf-8"
        stage = "MAIL"
        try:
            await smtp.mail(self.from_address, options=options, encoding=encoding)
            stage = "RCPT"
            await smtp.rcpt(rcpt, encoding=encoding)
            stage = "DATA"
            reply = await smtp.data(message)
        except aiosmtplib.SMTPResponseException as exc:
            return await self._refused(smtp, recipient, stage, exc.code, exc.message)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError,
                ConnectionError, OSError) as exc:
            self._drop()
            if stage != "DATA":
                raise _Dropped(str(exc)) from None
            return SendResult(recipient.id, Status.UNKNOWN, code="DATA",
                              reason=redact(f"connection lost during DATA: {exc}", self.secrets))
        return SendResult(recipient.id, Status.SENT, message_id=message_id,
                          raw=f"{reply.code} {reply.message}")

    async def _refused(self, smtp: aiosmtplib.SMTP, recipient: Recipient, stage: str,
                       code: int, text: str) -> SendResult:
        if code == 421 or code < 400:  # closing, or a reply that breaks the protocol
            self._drop()
        else:
            await self._reset(smtp)
        if stage == "MAIL" and code >= 500:
            raise self._error(FatalTransportError, "sender refused", code, text)
        reason = self._reason(code, text)
        if 400 <= code < 500:
            return SendResult(recipient.id, Status.RETRY, code=str(code), reason=reason)
        return SendResult(recipient.id, Status.FAILED, code=str(code), reason=reason,
                          bad_address=stage == "RCPT" and is_bad_address(code, text))

    # --- a batch ----------------------------------------------------------------------------

    async def send_batch(self, outgoing: Outgoing, recipients: Sequence[Recipient], *,
                         batch_key: str) -> list[SendResult]:
        check_batch(self, recipients)
        async with self._lock:
            return await self._send_all(outgoing, recipients)

    async def _send_all(self, outgoing: Outgoing,
                        recipients: Sequence[Recipient]) -> list[SendResult]:
        results: list[SendResult] = []
        for index, recipient in enumerate(recipients):
            message_id = outgoing.personalizer.message_id(recipient)
            message = outgoing.builder.build(recipient, message_id)
            stopped: TransportError | None = None
            for attempt in (1, 2):
                try:
                    smtp = await self._connection()
                    results.append(await self._send_one(smtp, recipient, message, message_id))
                except _Dropped as exc:
                    if attempt == 1:
                        continue  # a stale or dropped connection: reconnect, send again
                    stopped = self._error(BatchRetryable, f"connection lost twice: {exc}")
                except TransportError as exc:
                    stopped = exc
                break
            if stopped is not None:
                if not results:
                    raise stopped
                fatal = isinstance(stopped, FatalTransportError)
                results.append(SendResult(recipient.id, Status.RETRY,
                                          code=str(stopped.status or ""), reason=str(stopped),
                                          fatal=fatal))
                results += [
                    SendResult(r.id, Status.RETRY, code=str(stopped.status or ""),
                               reason=f"not sent: {stopped}")
                    for r in recipients[index + 1:]
                ]
                break
        return results

    async def aclose(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None or not smtp.is_connected:
            return
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()
