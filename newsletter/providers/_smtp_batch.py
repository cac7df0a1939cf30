"""One SMTP batch on one connection: each recipient's transaction, and its outcome.

With PIPELINING, one write carries the previous message's content (its DATA was answered
354), then RSET if the last transaction failed part-way, then this message's MAIL, RCPT and
DATA; the replies come back in that order (RFC 2920 section 3.1 allows the content first and
DATA last in a group). So a message costs one round trip, plus its turn at the server.
Without PIPELINING each command waits for its reply (lock-step), with the same outcomes.

A message's outcome is decided from its replies (see ``smtp``'s docstring for the table); the
content of message N is answered while message N+1 is already under way, so the outcome of N
is filled in then, and the outcome of the last one when the batch ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import NewsletterError
from ..message.model import Personalized
from ._smtp_pace import Pacer
from ._smtp_session import ConnectionLost, ReplyTimeout, Session
from ._smtp_wire import (
    DATA,
    END_OF_DATA,
    RSET,
    Reply,
    check_address,
    is_bad_address,
    is_throttling,
    mail_command,
    rcpt_command,
)
from .base import (
    BatchRetryable,
    ErrorT,
    FatalTransportError,
    Outcome,
    OutcomeKind,
    TransportError,
    not_sent,
)

LOST = (ConnectionLost, ReplyTimeout)
HOLD_LIMIT = 0.5  # seconds: a longer wait for the next slot sends the pending content first


class Dropped(Exception):
    """The connection went before this message's content was sent: nothing was accepted."""


@dataclass(slots=True)
class InData:
    """A message whose DATA was answered 354: its content goes out with the next write."""

    index: int
    person: Personalized
    content: bytes      # dot-stuffed message and the final ".CRLF"
    message_id: str
    ticket: int


class _Replies:
    """The replies to a group of commands: written at once when the server pipelines, else
    each written when its reply is asked for."""

    def __init__(self, session: Session, commands: list[bytes]):
        self._session = session
        self._lockstep = not session.pipelining
        if self._lockstep:
            self._commands = deque(commands)
        else:
            self._futures = deque(session.send(b"".join(commands), len(commands)))

    async def next(self) -> Reply:
        if self._lockstep:
            return await self._session.command(self._commands.popleft())
        return await self._futures.popleft()

    async def drain(self) -> Reply | None:
        """After a refusal: take the replies still due (pipelining only) and return the last,
        DATA's. Lock-step never sent the rest."""
        last = None
        if not self._lockstep:
            while self._futures:
                last = await self._futures.popleft()
        return last


class Connector(Protocol):
    """What a batch needs of its transport (``smtp.SmtpTransport``)."""

    sender: str         # the envelope's MAIL FROM
    pacer: Pacer

    def error(self, cls: type[ErrorT], message: str, code: int | None = None,
              text: str = "") -> ErrorT: ...

    def reason(self, text: str) -> str: ...

    async def open_session(self) -> Session: ...


class BatchRun:
    """Sends one batch over ``session`` (opening another through ``transport`` if it goes)."""

    def __init__(self, transport: Connector, messages: Sequence[Personalized],
                 session: Session | None,
                 message: Callable[[Personalized], bytes]):
        self.t = transport
        self.messages = messages
        self.session = session
        self.message = message      # person -> the dot-stuffed message bytes
        self.results: list[Outcome | None] = [None] * len(messages)
        self.in_data: InData | None = None

    async def run(self) -> list[Outcome]:
        for index, person in enumerate(self.messages):
            try:
                await self._deliver(index, person)
            except TransportError as exc:
                await self._finish_in_data()
                return self._stop(index, exc)
        await self._finish_in_data()
        return self._decided(len(self.messages))

    # --- one recipient ----------------------------------------------------------------------

    async def _deliver(self, index: int, person: Personalized) -> None:
        try:
            content = self.message(person) + END_OF_DATA
        except NewsletterError as exc:  # a value that cannot go into a header, and the like
            self._set(index, OutcomeKind.FAILED, code="message", reason=str(exc))
            return
        try:
            check_address(person.email, "recipient")
        except ValueError as exc:
            self._set(index, OutcomeKind.FAILED, code="address", reason=str(exc))
            return
        utf8 = not (person.email.isascii() and self.t.sender.isascii())
        commands = [mail_command(self.t.sender, utf8=utf8),
                    rcpt_command(person.email, utf8=utf8), DATA]
        for attempt in (1, 2):
            session = await self._session()
            if utf8 and not session.smtputf8:
                self._set(index, OutcomeKind.FAILED, code="SMTPUTF8",
                          reason="the address needs SMTPUTF8, which the server lacks")
                return
            if self.in_data is not None and self.t.pacer.delay() > HOLD_LIMIT:
                await self._finish_in_data()  # don't leave the server waiting in DATA
            ticket = await self.t.pacer.wait()
            try:
                await self._transact(session, InData(index, person, content,
                                                     person.message_id, ticket), commands)
                return
            except Dropped as exc:
                if attempt == 2:
                    raise self.t.error(BatchRetryable, f"connection lost twice: {exc}") from None

    async def _session(self) -> Session:
        session = self.session
        if session is not None and session.usable:
            return session
        if self.in_data is not None:  # its content was never written
            self._not_written(self.in_data)
        if session is not None:
            session.close()
        self.session = None
        self.session = await self.t.open_session()
        return self.session

    async def _transact(self, session: Session, message: InData,
                        commands: list[bytes]) -> None:
        prior, self.in_data = self.in_data, None
        head = [prior.content] if prior is not None else []
        reset = session.needs_reset
        if reset:
            head.append(RSET)
        if not session.usable:
            if prior is not None:
                self._not_written(prior)
            raise Dropped("the connection closed")
        replies = _Replies(session, head + commands)
        if prior is not None:
            try:
                self._final(prior, await replies.next(), session)
            except LOST as exc:
                self._lost_in_data(prior, exc, session)
                raise Dropped(str(exc)) from None
        try:
            if reset:
                if not (await replies.next()).ok:
                    session.close()
                    raise Dropped("RSET refused")
                session.needs_reset = False
            for stage in ("MAIL", "RCPT", "DATA"):
                if not session.usable:  # a 421 to the content before: these replies are void
                    raise Dropped("the server closed the connection")
                reply = await replies.next()
                if not (reply.code == 354 if stage == "DATA" else reply.ok):
                    await self._refused(message, stage, reply, replies, session)
                    return
        except LOST as exc:
            session.close()
            raise Dropped(str(exc)) from None
        self.in_data = message

    # --- outcomes ---------------------------------------------------------------------------

    def _final(self, message: InData, reply: Reply, session: Session) -> None:
        """The reply to a message's content."""
        if reply.ok:
            self.t.pacer.accepted(message.ticket)
            self._set(message.index, OutcomeKind.SENT, message_id=message.message_id,
                      raw=str(reply))
        elif reply.transient or reply.permanent:
            self._refusal(message, "DATA", reply, session)
        else:
            session.close()
            self._set(message.index, OutcomeKind.UNKNOWN, code=str(reply.code),
                      reason=self.t.reason(f"unexpected reply to the content: {reply}"))

    async def _refused(self, message: InData, stage: str, reply: Reply, replies: _Replies,
                       session: Session) -> None:
        """MAIL, RCPT or DATA refused: take the rest of the group's replies, then decide."""
        try:
            last = await replies.drain()
            if last is not None and last.code == 354:  # DATA accepted after all: end it empty
                await session.command(END_OF_DATA)
        except LOST:
            session.close()
        session.needs_reset = True
        if stage == "MAIL" and reply.permanent:
            raise self.t.error(FatalTransportError, "sender refused", reply.code, reply.text)
        self._refusal(message, stage, reply, session)

    def _refusal(self, message: InData, stage: str, reply: Reply, session: Session) -> None:
        code, reason = str(reply.code), self.t.reason(str(reply))
        if reply.code == 421 or not (reply.transient or reply.permanent):
            session.close()  # the server is leaving, or it no longer speaks SMTP to us
        if reply.transient:
            after = (self.t.pacer.throttled(message.ticket)
                     if is_throttling(reply.code, reply.text) else None)
            self._set(message.index, OutcomeKind.RETRY, code=code, reason=reason, retry_after=after)
        elif reply.permanent:
            self._set(message.index, OutcomeKind.FAILED, code=code, reason=reason,
                      bad_address=stage == "RCPT" and is_bad_address(reply.code, reply.text))
        else:
            self._set(message.index, OutcomeKind.RETRY, code=code,
                      reason=self.t.reason(f"unexpected reply to {stage}: {reply}"))

    def _lost_in_data(self, message: InData, exc: Exception, session: Session) -> None:
        session.close()
        self._set(message.index, OutcomeKind.UNKNOWN, code="DATA",
                  reason=self.t.reason(f"connection lost during DATA: {exc}"))

    def _not_written(self, message: InData) -> None:
        self.in_data = None
        self._set(message.index, OutcomeKind.RETRY, code="DATA",
                  reason="the connection closed before the message's content was sent")

    async def _finish_in_data(self) -> None:
        """Send the last message's content on its own and take its reply."""
        message, self.in_data = self.in_data, None
        if message is None:
            return
        session = self.session
        if session is None or not session.usable:
            self._not_written(message)
            return
        try:
            self._final(message, await session.command(message.content), session)
        except LOST as exc:
            self._lost_in_data(message, exc, session)

    def _set(self, index: int, kind: OutcomeKind, **fields: Any) -> None:
        self.results[index] = Outcome(self.messages[index].recipient.id, kind, **fields)

    def _stop(self, index: int, exc: TransportError) -> list[Outcome]:
        """A batch-wide error at recipient ``index``: raise it while nothing is decided; else
        keep what is, flag this recipient (fatal for a fatal error) and return the rest."""
        if not any(self.results):
            raise exc
        fatal = isinstance(exc, FatalTransportError)
        if self.results[index] is None:  # a fatal error was not this recipient's doing
            self._set(index, OutcomeKind.UNTRIED if fatal else OutcomeKind.RETRY,
                      code=str(exc.status or ""), reason=str(exc), fatal=fatal)
        return self._decided(index + 1) + not_sent(self.messages[index + 1:], exc)

    def _decided(self, upto: int) -> list[Outcome]:
        decided = self.results[:upto]
        missing = [self.messages[i].email for i, r in enumerate(decided) if r is None]
        assert not missing, f"no outcome for {missing}"
        return decided  # type: ignore[return-value]
