"""The identifiers we put into every message, read back out of what providers return.

* Message-ID ``<{week}.{subscriber_id}.{hash10}@{domain}>`` (built by the personalizer);
* the edition key ``2026-W47.0123456789ab`` and ``subscriber_id`` in provider metadata (SES
  and Resend tags carry the edition with ``.`` as ``_``, their tag alphabet has no dot);
* the unsubscribe token ``<id base 36>.<22 base64url characters>`` in the List-Unsubscribe
  URL ``.../unsubscribe/<token>`` and in the mailto subject ``unsubscribe <token>``.

Nothing here checks a token's signature: that needs the secret key, and belongs to the code
that acts on the event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

TOKEN = r"[0-9a-z]{1,13}\.[A-Za-z0-9_-]{22}"
_TOKEN_IN_URL = re.compile(rf"/unsubscribe/({TOKEN})(?![A-Za-z0-9_-])")
_TOKEN_IN_SUBJECT = re.compile(rf"unsubscribe\s+({TOKEN})(?![A-Za-z0-9_-])", re.IGNORECASE)
_OUR_MESSAGE_ID = re.compile(r"^<(\d{4}-W\d{2})\.(\d+)\.([0-9a-f]{10})@([^<>@\s]+)>\Z")
_TAG_EDITION = re.compile(r"^(\d{4}-W\d{2})_([0-9a-f]{12})\Z")
METADATA_KEYS = ("edition", "subscriber_id")


@dataclass(frozen=True)
class MessageRef:
    """What our own Message-ID says: the week and the subscriber it was sent to."""

    week: str
    subscriber_id: int
    domain: str
    content_hash: str = ""  # the first characters of the edition's content hash


def angle(message_id: object) -> str:
    """A Message-ID in angle brackets (providers report it with and without), or ''."""
    if not isinstance(message_id, str):
        return ""
    text = message_id.strip()
    if not text or any(c in text for c in "\r\n\0 "):
        return ""
    return text if text.startswith("<") else f"<{text.strip('<>')}>"


def bare(message_id: object) -> str:
    """A provider message id without angle brackets (Mailgun reports both forms)."""
    return message_id.strip().strip("<>") if isinstance(message_id, str) else ""


def parse_message_id(message_id: str) -> MessageRef | None:
    """Our Message-ID's week and subscriber id, or None when it is not one of ours."""
    match = _OUR_MESSAGE_ID.match(angle(message_id))
    if match is None:
        return None
    return MessageRef(match[1], int(match[2]), match[4], match[3])


def edition_from_tag(value: str) -> str:
    """The edition key from an SES/Resend tag value (``_`` back to ``.``)."""
    match = _TAG_EDITION.match(value)
    return f"{match[1]}.{match[2]}" if match else value


def metadata_from(values: object) -> dict[str, str]:
    """``edition`` and ``subscriber_id`` from a provider's metadata or tags, when present.

    Accepts a flat mapping (Postmark Metadata, SendGrid custom args, Mailgun user-variables,
    Resend tags), SES's mapping of lists, and a list of ``{"name", "value"}`` pairs.
    """
    if isinstance(values, list):
        values = {item["name"]: item.get("value") for item in values
                  if isinstance(item, Mapping) and isinstance(item.get("name"), str)}
    if not isinstance(values, Mapping):
        return {}
    out = {}
    for key in METADATA_KEYS:
        value = values.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value):
            out[key] = edition_from_tag(str(value)) if key == "edition" else str(value)
    return out


def token_in_list_unsubscribe(header: object) -> str:
    """The unsubscribe token in a List-Unsubscribe header (URL or mailto subject), or ''."""
    if not isinstance(header, str):
        return ""
    match = _TOKEN_IN_URL.search(header)
    if match is None:
        match = _TOKEN_IN_SUBJECT.search(unquote(header))
    return match[1] if match else ""


def token_in_subject(subject: str) -> str:
    """The token of a mailto unsubscribe request's subject ``unsubscribe <token>``, or ''.

    Mail clients may prefix the subject (``Re:``, ``AW:``) or add words after it; the token's
    shape is distinctive enough to find it anywhere after the word ``unsubscribe``.
    """
    match = _TOKEN_IN_SUBJECT.search(subject)
    return match[1] if match else ""
