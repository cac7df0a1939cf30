"""One SMTP connection after its handshake: commands out, replies matched back in order.

aiosmtplib opens the connection, secures it (implicit TLS or STARTTLS) and authenticates; it
does that well. It cannot pipeline (RFC 2920), though: its protocol pairs each command with a
single awaited reply and drops bytes that arrive while no command waits, and it runs two regex
passes over every message body (line endings, dot-stuffing). So once the session is ready, its
transport is handed to this protocol (``asyncio.Transport.set_protocol``), which queues one
waiter per expected reply: a group of commands goes out in one write, the replies are matched
to them in order, and a message is written exactly as the builder produced it.

A waiter fails with ``ConnectionLost`` when the connection closes, breaks or sends something
that is not SMTP, and with ``ReplyTimeout`` when no reply comes for ``timeout`` seconds; either
way the connection is unusable afterwards (its replies can no longer be matched).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import cast

import aiosmtplib

from ._smtp_wire import QUIT, ProtocolError, Reply, ReplyReader


class ConnectionLost(Exception):
    """The connection closed or broke while replies were outstanding."""


class ReplyTimeout(Exception):
    """No reply came within the timeout."""


class Session(asyncio.Protocol):
    """An established SMTP session that speaks in groups of commands."""

    def __init__(self, transport: asyncio.Transport, *, pipelining: bool, smtputf8: bool,
                 timeout: float, opened_at: float):
        self.transport = transport
        self.pipelining = pipelining
        self.smtputf8 = smtputf8
        self.timeout = timeout
        self.last_used = opened_at
        self.closed = False
        self.needs_reset = False  # a transaction failed part-way: RSET before the next MAIL
        self.closing_reply: Reply | None = None  # an unasked 421: the server is leaving
        self._loop = asyncio.get_running_loop()
        self._reader = ReplyReader()
        self._waiters: deque[asyncio.Future[Reply]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._gone = self._loop.create_future()

    @classmethod
    def take_over(cls, smtp: aiosmtplib.SMTP, *, timeout: float, now: float) -> Session:
        """Move a connected, ready ``aiosmtplib.SMTP`` onto a Session (between commands)."""
        assert smtp.protocol is not None, "a connected client"
        # A connected client's transport: a socket's, or TLS over one (both asyncio.Transport).
        transport = cast(asyncio.Transport, smtp.protocol.transport)
        session = cls(transport, pipelining=smtp.supports_extension("pipelining"),
                      smtputf8=smtp.supports_extension("smtputf8"), timeout=timeout,
                      opened_at=now)
        transport.set_protocol(session)
        return session

    @property
    def usable(self) -> bool:
        return not self.closed and self.closing_reply is None

    # --- asyncio.Protocol -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            replies = self._reader.feed(data)
        except ProtocolError as exc:
            self._fail(ConnectionLost(str(exc)))
            self.transport.abort()
            return
        for reply in replies:
            if self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():  # a waiter whose task was cancelled still takes its reply
                    waiter.set_result(reply)
            elif reply.code == 421:
                self.closing_reply = reply  # e.g. an idle timeout announced before closing
        if self._waiters:
            self._arm()
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def eof_received(self) -> bool:
        self.closed = True
        self._fail(ConnectionLost("the server closed the connection"))
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason = f"connection lost: {exc}" if exc else "the server closed the connection"
        self._fail(ConnectionLost(reason))
        if not self._gone.done():
            self._gone.set_result(None)

    # --- use --------------------------------------------------------------------------------

    def send(self, data: bytes, replies: int) -> list[asyncio.Future[Reply]]:
        """Write ``data`` (one or more commands, or a message) and return one future for each
        of the ``replies`` it asks for, in order."""
        if not self.usable:
            raise ConnectionLost(f"the connection is closed{self._why()}")
        waiters = [self._loop.create_future() for _ in range(replies)]
        self._waiters.extend(waiters)
        self.transport.write(data)
        if self._timer is None:
            self._arm()
        return waiters

    async def command(self, data: bytes) -> Reply:
        """One command (or message), and its reply."""
        return await self.send(data, 1)[0]

    def close(self) -> None:
        """Drop the connection at once (after a failure: no QUIT)."""
        self.closed = True
        self.transport.abort()

    async def quit(self) -> None:
        """QUIT politely, then close; errors are of no interest by now."""
        if self.usable:
            with contextlib.suppress(ConnectionLost, ReplyTimeout, OSError):
                await self.command(QUIT)
        self.closed = True
        self.transport.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._gone), self.timeout)

    # --- internals --------------------------------------------------------------------------

    def _why(self) -> str:
        return f" ({self.closing_reply})" if self.closing_reply is not None else ""

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self.timeout, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._waiters:
            self._fail(ReplyTimeout(f"no reply within {self.timeout:g} s"))
            self.close()

    def _fail(self, exc: Exception) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # retrieved: nobody may await the later ones
