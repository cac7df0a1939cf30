"""SMTP on the wire, as pure functions: the commands of one mail transaction, the replies.

Nothing here does I/O, so each piece is tested on its own: ``ReplyReader`` turns whatever
bytes arrive, split anywhere, into whole replies (RFC 5321 section 4.2, multi-line replies
joined); the command builders refuse values that could smuggle in a second command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_REPLY = 64 * 1024  # a reply longer than this is not SMTP; it would only fill memory
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
END_OF_DATA = b".\r\n"  # follows a message that ends in CRLF
RSET = b"RSET\r\n"
DATA = b"DATA\r\n"
QUIT = b"QUIT\r\n"


class ProtocolError(Exception):
    """The server sent something that is not an SMTP reply."""


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


def enhanced_code(text: str) -> str:
    """The RFC 3463 enhanced status code at the start of a reply's text, or ''."""
    found = _ENHANCED.match(text)
    return ".".join(found.groups()) if found else ""


BAD_ADDRESS_CODES = frozenset({550, 551, 553})
THROTTLE_CODES = frozenset({450, 451, 452, 454})


def is_bad_address(code: int, text: str) -> bool:
    """Whether a permanent RCPT refusal says the address itself is bad."""
    enhanced = enhanced_code(text)
    if enhanced.startswith("5.1."):
        return True
    return code in BAD_ADDRESS_CODES and not enhanced.startswith("5.7.")


def is_throttling(code: int, text: str) -> bool:
    """Whether a reply asks the sender to slow down: 421 (the server is closing the channel:
    too many connections, too fast, shutting down), or a 4xx policy refusal (4.7.x, as relays
    answer when a rate or a quota is exceeded). Greylisting is 4.7.x too, but concerns one
    recipient and is waited out by that recipient's retry, so it does not count."""
    if code == 421:
        return True
    lowered = text.lower()
    return (code in THROTTLE_CODES and enhanced_code(text).startswith("4.7.")
            and "greylist" not in lowered and "graylist" not in lowered)


class ReplyReader:
    """Collects bytes from the server and hands out complete replies, in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[str] = []  # the text of a multi-line reply so far

    def feed(self, data: bytes) -> list[Reply]:
        self._buffer += data
        replies: list[Reply] = []
        start = 0
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buffer[start:end]).rstrip(b"\r")
            start = end + 1
            reply = self._line(line)
            if reply is not None:
                replies.append(reply)
        del buffer[:start]
        if len(buffer) > MAX_REPLY or sum(map(len, self._lines)) > MAX_REPLY:
            raise ProtocolError("a reply longer than 64 KiB")
        return replies

    def _line(self, line: bytes) -> Reply | None:
        code = line[:3]
        if len(code) != 3 or not code.isdigit() or line[3:4] not in (b"", b" ", b"-"):
            shown = line[:80].decode("utf-8", "replace")
            raise ProtocolError(f"not an SMTP reply: {shown!r}")
        self._lines.append(line[4:].decode("utf-8", "replace").strip())
        if line[3:4] == b"-":
            return None
        text, self._lines = "\n".join(self._lines), []
        return Reply(int(code), text)


def _address(address: str, what: str) -> str:
    if _CONTROL.search(address) or "<" in address or ">" in address:
        raise ValueError(f"the {what} address {address!r} contains a control character or "
                         "an angle bracket")
    return address


def mail_command(sender: str, *, utf8: bool) -> bytes:
    """``MAIL FROM:<sender>``, with the SMTPUTF8 parameter (RFC 6531) when ``utf8``."""
    sender = _address(sender, "sender")
    if utf8:
        return f"MAIL FROM:<{sender}> SMTPUTF8\r\n".encode()
    return f"MAIL FROM:<{sender}>\r\n".encode("ascii")


def rcpt_command(recipient: str, *, utf8: bool) -> bytes:
    recipient = _address(recipient, "recipient")
    return f"RCPT TO:<{recipient}>\r\n".encode("utf-8" if utf8 else "ascii")


def unstuff(message: bytes) -> bytes:
    """A dot-stuffed message as the receiving server delivers it (RFC 5321 section 4.5.2):
    the first dot of each line that starts with one removed. ``message`` starts with a
    header, never with a dot."""
    if b"\n." not in message:
        return message
    return message.replace(b"\n..", b"\n.")


def check_address(address: str, what: str) -> None:
    """Raise ValueError if ``address`` cannot be put into a command as it is."""
    _address(address, what)
