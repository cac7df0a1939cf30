"""The one clock: every stored or compared time is an aware UTC datetime from here."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)
