"""Reading multipart/report mail (RFC 6522): the report's field blocks and the returned headers.

Shared by the DSN (RFC 3464, RFC 6533 for UTF-8) and ARF (RFC 5965) readers. The field blocks
are read from the part's bytes rather than through the email package's own handling of
``message/delivery-status``, which does not cover ``message/global-delivery-status``.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message

_POLICY = email.policy.default
RETURNED_TYPES = ("message/rfc822", "text/rfc822-headers", "message/global",
                  "message/global-headers")
_ADDRESS_UNITEXT = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")


@dataclass(frozen=True)
class Fields:
    """One block of ``Name: value`` fields; names compared without regard to case."""

    pairs: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str:
        values = self.get_all(name)
        return values[0] if values else ""

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [v for k, v in self.pairs if k.lower() == wanted]


def parse_mail(data: bytes) -> EmailMessage:
    return email.parser.BytesParser(policy=_POLICY).parsebytes(data)


def report_type(message: Message) -> str:
    """``delivery-status``, ``feedback-report``, ... of a multipart/report, else ''."""
    if message.get_content_type() != "multipart/report":
        return ""
    return str(message.get_param("report-type", "", header="content-type")).strip().lower()


def find_part(message: Message, *content_types: str) -> Message | None:
    """The first direct part of ``message`` with one of ``content_types``."""
    if not message.is_multipart():
        return None
    for part in message.get_payload():
        if isinstance(part, Message) and part.get_content_type() in content_types:
            return part
    return None


def field_blocks(part: Message) -> list[Fields]:
    """The blank-line separated field blocks of a report part, unfolded."""
    return [_fields(block) for block in re.split(r"\n[ \t]*\n", _part_text(part))
            if block.strip()]


def returned_headers(message: Message) -> Message | None:
    """The headers of the returned original message, when the report includes them."""
    part = find_part(message, *RETURNED_TYPES)
    if part is None:
        return None
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    return email.parser.BytesParser(policy=_POLICY).parsebytes(_decoded(part), headersonly=True)


def header_text(message: Message | None, name: str) -> str:
    """A header as one line of text ('' when absent or unreadable)."""
    if message is None:
        return ""
    try:
        value = message.get(name)
    except (ValueError, IndexError, TypeError):  # a header the parser cannot make sense of
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def address_field(value: str) -> str:
    """The address of an ``addr-type; address`` field (RFC 3464 2.3.1, RFC 6533 utf-8).

    RFC 6533's ``\\x{HEX}`` escapes are decoded; ``+HH`` xtext is not, since a plain
    ``jose+ab@...`` would be mangled by it and reports of ours carry addresses unencoded.
    """
    kind, sep, address = value.partition(";")
    if not sep:
        address, kind = kind, "rfc822"
    address = address.strip().strip("<>").strip()
    if kind.strip().lower() == "utf-8":
        address = _ADDRESS_UNITEXT.sub(lambda m: chr(int(m[1], 16)), address)
    return address


def raw_text(data: bytes) -> str:
    """The mail as text to keep whole: UTF-8, stray bytes shown as ``\\xNN`` escapes."""
    return data.decode("utf-8", "backslashreplace")


def _part_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parsed the blocks as messages
        data = b"".join(p.as_bytes() for p in payload if isinstance(p, Message))
    else:
        data = _decoded(part)
    return data.decode("utf-8", "replace").replace("\r\n", "\n")


def _decoded(part: Message) -> bytes:
    """The body of a part that is not multipart, transfer-decoded (b'' when it has none)."""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _fields(block: str) -> Fields:
    pairs: list[list[str]] = []
    for line in block.split("\n"):
        if line[:1] in (" ", "\t") and pairs:
            pairs[-1][1] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            pairs.append([name.strip(), value.strip()])
    return Fields(tuple((n, " ".join(v.split())) for n, v in pairs))
