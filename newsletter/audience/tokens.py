"""Signed, purpose-scoped tokens for unsubscribe and confirmation links.

A token is ``<subscriber id in base 36>.<HMAC-SHA256, 16 bytes, base64url>``. It names the
subscriber without revealing the address, and the purpose is part of what is signed, so an
unsubscribe token cannot confirm a subscription or the other way round. Tokens do not expire:
an unsubscribe link in an old email must keep working.
"""

from __future__ import annotations

import base64
import hmac

PURPOSES = ("unsubscribe", "confirm")
_SIG_BYTES = 16


class BadToken(ValueError):
    """The token was altered, is malformed, or was made for another purpose or key."""


def _signature(key: bytes, purpose: str, ident: str) -> bytes:
    mac = hmac.digest(key, f"{purpose}:{ident}".encode("ascii"), "sha256")
    return mac[:_SIG_BYTES]


def make_token(secret: str, purpose: str, subscriber_id: int) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    if subscriber_id < 0:
        raise ValueError("subscriber id must not be negative")
    ident = _base36(subscriber_id)
    sig = base64.urlsafe_b64encode(_signature(secret.encode(), purpose, ident)).rstrip(b"=")
    return f"{ident}.{sig.decode('ascii')}"


def read_token(secret: str, purpose: str, token: str) -> int:
    """Return the subscriber id the token names, or raise BadToken."""
    ident, dot, sig = token.partition(".")
    if not dot or not ident or not ident.isalnum() or not ident.isascii():
        raise BadToken("malformed token")
    try:
        given = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    except (ValueError, TypeError):
        raise BadToken("malformed token") from None
    expected = _signature(secret.encode(), purpose, ident.lower())
    if not hmac.compare_digest(given, expected):
        raise BadToken("token signature does not match")
    return int(ident, 36)


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
