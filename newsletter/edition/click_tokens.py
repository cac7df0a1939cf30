"""Signed click tokens: what ``{base_url}/r/<token>`` names, and nothing about the reader.

A token is ``<week>.<item>.<link>.<url>.<signature>``: the ISO week, the item's number in the
edition and the link's number in the item (both counted from 1), the original URL in unpadded
base64url, and an HMAC-SHA256 (16 bytes, base64url) of all of it under ``secret_key``, scoped
to the purpose "click" so that no unsubscribe or confirmation token is ever one. It names no
subscriber: every reader's message carries the same token for the same link.

The URL travels inside the signed token, so the redirect needs no lookup, and a link keeps
going where the mail said even if the item is edited after the send. Only an http(s) URL of
printable ASCII (as ``click_links`` normalizes it) up to ``MAX_URL`` characters is carried:
``MAX_TOKEN`` bounds a token, and anything longer is refused before it is decoded.

As with ``audience/tokens.py``, only the exact spelling ``make_click_token`` produces verifies
(base64 leaves spare bits in its last character; numbers have no leading zeros), and
``read_click_token`` takes the current key and the previous ones (``secret_key_previous``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

PURPOSE = "click"
MAX_URL = 2048        # characters: longer links are left as they are (and not counted)
MAX_NUMBER = 9999     # items in an edition, links in an item
_SIG_BYTES = 16
_SIG_CHARS = 22       # unpadded base64 of 16 bytes
_URL_CHARS = math.ceil(MAX_URL * 4 / 3)
# week, two numbers of at most four digits, the URL, the signature, four dots
MAX_TOKEN = 8 + 2 * 4 + _URL_CHARS + _SIG_CHARS + 4
_TOKEN_RE = re.compile(r"^(\d{4}-W\d{2})\.([1-9]\d{0,3})\.([1-9]\d{0,3})\."
                       rf"([A-Za-z0-9_-]{{2,{_URL_CHARS}}})\.([A-Za-z0-9_-]{{{_SIG_CHARS}}})\Z",
                       re.ASCII)
# An absolute http(s) URL of printable ASCII: what a Location header can carry as it is.
_URL_RE = re.compile(r"^https?://[!-~]+\Z", re.ASCII | re.IGNORECASE)


class BadClickToken(ValueError):
    """The token was altered, is malformed, too long, or was signed with another key."""


@dataclass(frozen=True)
class ClickTarget:
    """One link of one item of one week's edition, and where it goes."""

    week: str
    item: int   # the item's number in the edition, from 1
    link: int   # the link's number in the item, from 1
    url: str    # the original URL, normalized (ASCII)


def carried(url: str) -> bool:
    """Whether a token can carry ``url``: absolute http(s), printable ASCII, not too long."""
    return len(url) <= MAX_URL and _URL_RE.match(url) is not None


def make_click_token(secret: str, target: ClickTarget) -> str:
    if not carried(target.url):
        raise ValueError("a click token carries an http(s) ASCII URL of at most "
                         f"{MAX_URL} characters")
    if not (1 <= target.item <= MAX_NUMBER and 1 <= target.link <= MAX_NUMBER):
        raise ValueError(f"item and link numbers are 1 to {MAX_NUMBER}")
    url = base64.urlsafe_b64encode(target.url.encode("ascii")).rstrip(b"=").decode("ascii")
    signed = f"{target.week}.{target.item}.{target.link}.{url}"
    return f"{signed}.{_signature(secret, signed)}"


def read_click_token(secrets: str | Iterable[str], token: str) -> ClickTarget:
    """The link the token names, or BadClickToken. ``secrets``: the signing key, or the keys
    to try (current first, then previous ones)."""
    keys = [secrets] if isinstance(secrets, str) else [s for s in secrets if s]
    target = peek_click_token(token)
    if target is None or not keys:
        raise BadClickToken("malformed click token")
    signed, _, signature = token.rpartition(".")
    if not any(hmac.compare_digest(signature, _signature(key, signed)) for key in keys):
        raise BadClickToken("click token signature does not match")
    return target


def peek_click_token(token: str) -> ClickTarget | None:
    """What a well-formed token says, without checking its signature (for ``newsletter
    check``, which reads the links of a rendered edition); None when it is malformed."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN:
        return None
    match = _TOKEN_RE.match(token)
    if match is None:
        return None
    week, item, link, encoded, _sig = match.groups()
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != encoded:
        return None  # spare bits set: another spelling of the same bytes
    url = raw.decode("latin-1")
    if not carried(url):
        return None
    return ClickTarget(week, int(item), int(link), url)


def _signature(secret: str, signed: str) -> str:
    mac = hmac.digest(secret.encode("utf-8"), f"{PURPOSE}:{signed}".encode("ascii"), "sha256")
    return base64.urlsafe_b64encode(mac[:_SIG_BYTES]).rstrip(b"=").decode("ascii")
