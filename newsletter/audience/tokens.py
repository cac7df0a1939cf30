"""Signed, purpose-scoped tokens for the links in readers' mails.

A token is ``<subscriber id in base 36>.<HMAC-SHA256, 16 bytes, base64url>``, or, when it
carries the time it was issued, ``<id>.<issue time in base 36 seconds>.<HMAC>``. It names the
subscriber without revealing the address, and the purpose (and issue time) are part of what is
signed, so an unsubscribe token cannot confirm a subscription or the other way round.

The purposes: ``unsubscribe`` and ``manage`` (every edition's footer; they name the
subscriber and do not expire: a link in an old email must keep working), ``confirm`` (the
double opt-in; names the subscriber), ``address`` and ``data`` (an address change's link and
a data download's: they name the outbox row that mailed them, which says whose and what, and
records the link's one use). The last three expire: ``read_token(..., max_age=...)``
refuses a token older than that with ``ExpiredToken``, and one without an issue time.

Only the exact spelling ``make_token`` produces verifies (base64 leaves spare bits in the last
character; base 36 has upper case and leading zeros): one link, one spelling. ``read_token``
takes the current key and any previous ones (``secret_key_previous``), so links signed before
a key rotation keep working.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from ..clock import utc_now

PURPOSES = ("unsubscribe", "confirm", "manage", "address", "data")
_SIG_BYTES = 16
_SIG_CHARS = 22  # unpadded base64 of 16 bytes
# 13 base-36 digits hold any 64-bit id or time; longer is junk, and int() of huge digit strings
# is slow.
_TOKEN_RE = re.compile(r"^([0-9a-z]{1,13})(?:\.([0-9a-z]{1,13}))?\.([A-Za-z0-9_-]{22})\Z")


class BadToken(ValueError):
    """The token was altered, is malformed, or was made for another purpose or key."""


class ExpiredToken(BadToken):
    """A genuine token, older than the ``max_age`` it was read with.

    ``subscriber_id`` and ``issued_at`` are trustworthy (the signature matched), so the caller
    can offer to send a fresh link.
    """

    def __init__(self, subscriber_id: int, issued_at: datetime):
        super().__init__("token has expired")
        self.subscriber_id = subscriber_id
        self.issued_at = issued_at


def make_token(secret: str, purpose: str, subscriber_id: int, *,
               issued_at: datetime | None = None) -> str:
    """A token for ``subscriber_id``; with ``issued_at`` (aware), one that can expire."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    if subscriber_id < 0:
        raise ValueError("subscriber id must not be negative")
    ident = _base36(subscriber_id)
    if issued_at is None:
        return f"{ident}.{_signature(secret, purpose, ident)}"
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be an aware datetime")
    stamp = _base36(max(0, int(issued_at.timestamp())))
    return f"{ident}.{stamp}.{_signature(secret, purpose, f'{ident}:{stamp}')}"


def read_token(secrets: str | Iterable[str], purpose: str, token: str, *,
               max_age: float | timedelta | None = None, now: datetime | None = None) -> int:
    """The subscriber id the token names, or BadToken (ExpiredToken when too old).

    ``secrets`` is the signing key, or the keys to try (current first, then previous ones).
    With ``max_age`` (seconds or a timedelta) the token must carry its issue time and be at
    most that old at ``now`` (default: the clock's now).
    """
    keys = [secrets] if isinstance(secrets, str) else [s for s in secrets if s]
    match = _TOKEN_RE.match(token) if isinstance(token, str) else None
    if match is None or not keys:
        raise BadToken("malformed token")
    ident, stamp, _sig = match.groups()
    subscriber_id = int(ident, 36)
    issued = None if stamp is None else _time(stamp)
    if not any(hmac.compare_digest(token, _remake(k, purpose, subscriber_id, issued))
               for k in keys):
        raise BadToken("token signature does not match")
    if max_age is not None:
        if issued is None:
            raise BadToken("token does not carry an issue time")
        limit = max_age if isinstance(max_age, timedelta) else timedelta(seconds=max_age)
        if (now or utc_now()) - issued > limit:
            raise ExpiredToken(subscriber_id, issued)
    return subscriber_id


def _time(stamp: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(stamp, 36), UTC)
    except (OverflowError, OSError, ValueError):  # beyond the year 9999
        raise BadToken("malformed token") from None


def _remake(secret: str, purpose: str, subscriber_id: int, issued: datetime | None) -> str:
    try:
        return make_token(secret, purpose, subscriber_id, issued_at=issued)
    except ValueError:
        raise BadToken(f"unknown token purpose {purpose!r}") from None


def _signature(secret: str, purpose: str, signed: str) -> str:
    mac = hmac.digest(secret.encode("utf-8"), f"{purpose}:{signed}".encode("ascii"), "sha256")
    return base64.urlsafe_b64encode(mac[:_SIG_BYTES]).rstrip(b"=").decode("ascii")


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
