"""Fast MIME assembly: build the message once per edition, fill in each recipient.

The stdlib's ``EmailMessage(...).as_bytes()`` costs milliseconds per message. Here everything
that does not depend on the recipient is encoded once: the static headers, the MIME skeleton
and every literal stretch of the quoted-printable bodies. Per recipient only the few field
values are encoded and joined in.

Quoted-printable makes the join safe: each literal stretch and each value is encoded on its
own, starting at the beginning of a line, and followed by a soft line break (``=`` CRLF),
which decoders remove. So the pieces never affect each other's line lengths (at most 76)
and the decoded body is exactly the filled-in text. The boundary starts with ``=_``, which
quoted-printable output can never contain.

For SMTP, ``build(person, dot_stuffed=True)`` gives the message with RFC 5321 dot-stuffing
already applied, so it can be written after DATA as it is. A line can start with "." only in
a quoted-printable piece (headers start with a name or with folding white space, delimiters
with "--"), and each piece starts a line, so each literal stretch is stuffed once per edition
and each value when it is encoded.
"""

from __future__ import annotations

import binascii
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime

from ..audience.addresses import envelope_address
from ..edition.placeholders import FieldTemplate
from ..errors import HeaderError
from ..text import has_control
from . import headers
from .model import Personalized, Sender

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"


def dot_stuff(piece: bytes) -> bytes:
    """Double the dot that starts a line (RFC 5321 section 4.5.2), for a piece of CRLF lines
    that itself starts at the beginning of a line."""
    if piece.startswith(b"."):
        piece = b"." + piece
    return piece.replace(b"\n.", b"\n..")


def qp_encode(text: str) -> bytes:
    """Quoted-printable with CRLF line ends and room left on the last line for a soft break."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", CRLF)
    start = encoded.rfind(b"\n") + 1
    last = encoded[start:]
    if len(last) < 76:
        return encoded
    cut = 72
    if last[cut - 1 : cut] == b"=":
        cut -= 1
    elif last[cut - 2 : cut - 1] == b"=":
        cut -= 2
    return encoded[: start + cut] + SOFT_BREAK + encoded[start + cut :]


class _EncodedBody:
    """One body part's literal stretches, pre-encoded, ready to interleave with values."""

    def __init__(self, template: FieldTemplate):
        self.template = template
        self.literals = tuple(self._piece(lit) for lit in template.literals)
        self.stuffed = tuple(dot_stuff(lit) for lit in self.literals)

    @staticmethod
    def _piece(text: str) -> bytes:
        encoded = qp_encode(text)
        return encoded + SOFT_BREAK if encoded and not encoded.endswith(CRLF) else encoded

    def encode(self, values: Mapping[str, str], *, stuffed: bool = False) -> list[bytes]:
        if stuffed:
            return self.template.interleave(self.stuffed, values, _stuffed_value)
        return self.template.interleave(self.literals, values, _value)


def _value(value: str) -> bytes:
    return qp_encode(value) + SOFT_BREAK


def _stuffed_value(value: str) -> bytes:
    return dot_stuff(qp_encode(value) + SOFT_BREAK)


class MessageBuilder:
    """Turns one recipient's ``Personalized`` into the bytes of a complete RFC 5322 message."""

    def __init__(self, sender: Sender, subject: str, html: FieldTemplate, text: FieldTemplate):
        boundary = f"=_nl_{secrets.token_hex(12)}"
        static = [
            headers.mailbox("From", sender.name, envelope_address(sender.address)),
            headers.unstructured("Subject", subject),
            b"MIME-Version: 1.0\r\n",
        ]
        if sender.reply_to:
            static.append(headers.mailbox("Reply-To", "", envelope_address(sender.reply_to)))
        static.append(
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'.encode("ascii")
        )
        self._static = b"".join(static)
        # The CRLF before each delimiter belongs to the delimiter (RFC 2046); before the first,
        # it is the blank line that ends the headers.
        part = (
            '\r\n--{b}\r\nContent-Type: text/{kind}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._text_head = part.format(b=boundary, kind="plain").encode("ascii")
        self._html_head = part.format(b=boundary, kind="html").encode("ascii")
        self._end = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._text = _EncodedBody(text)
        self._html = _EncodedBody(html)
        self._date_second = -1
        self._date_header = b""

    def _date(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            stamp = format_datetime(datetime.fromtimestamp(now, UTC))
            self._date_header = f"Date: {stamp}\r\n".encode("ascii")
        return self._date_header

    def build(self, person: Personalized, *, dot_stuffed: bool = False) -> bytes:
        """The message; with ``dot_stuffed``, ready to follow SMTP's DATA as it is."""
        out = [
            self._static,
            self._date(),
            to_header(person),
            _list_header("Message-ID", person.message_id),
        ]
        for name, value in person.headers.items():
            out.append(_named_header(name, value) if name == "List-Id"
                       else _list_header(name, value))
        out.append(self._text_head)
        out.extend(self._text.encode(person.values, stuffed=dot_stuffed))
        out.append(self._html_head)
        out.extend(self._html.encode(person.html_values, stuffed=dot_stuffed))
        out.append(self._end)
        return b"".join(out)


def to_header(person: Personalized) -> bytes:
    """The To header: the display name RFC 2047 encoded where it needs to be."""
    name, email = person.name, person.email
    if has_control(name) or has_control(email) or not email.isascii():
        raise HeaderError(f"subscriber {email!r}: the name or address cannot be a header "
                          "(a control character, or a non-ASCII address)")
    return headers.mailbox("To", name, email)


def _named_header(name: str, value: str) -> bytes:
    """``phrase <id>`` (List-Id): the phrase encoded like a display name."""
    phrase, _, angle = value.rpartition(" <")
    return headers.named(name, phrase, "<" + angle) if phrase else _list_header(name, value)


def _list_header(name: str, value: str) -> bytes:
    """ASCII structured headers (Message-ID, List-*): folded after commas, never encoded."""
    if has_control(value) or not value.isascii():
        raise HeaderError(f"header {name} must be one line of ASCII, got {value!r}")
    line = f"{name}: {value}\r\n"
    if len(line) > 78:
        line = f"{name}: " + value.replace(", ", ",\r\n ") + "\r\n"
    return line.encode("ascii")
