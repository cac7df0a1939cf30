"""Provider timestamps (Unix seconds, ISO 8601, RFC 5322 dates) as aware UTC datetimes."""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime

_FRACTION = re.compile(r"(\.\d{6})\d+")


def from_unix(value: object) -> datetime | None:
    """Seconds since the epoch (int, float or their text), or None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past any float
        return None
    if seconds != seconds or not 0 <= seconds < 1e11:  # NaN, negative, absurdly far
        return None
    return datetime.fromtimestamp(seconds, UTC)


def from_iso(value: object) -> datetime | None:
    """An ISO 8601 time; a time without a zone is taken as UTC. None when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = _FRACTION.sub(r"\1", value.strip())  # .NET sends seven fraction digits
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return _utc(parsed)


def from_rfc5322(value: object) -> datetime | None:
    """A mail ``Date``/``Arrival-Date`` value, or None when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return _utc(parsed)


def _utc(parsed: datetime) -> datetime | None:
    """``parsed`` in UTC (taken as UTC without a zone); None when UTC would fall outside the
    years 1-9999 (``0001-01-01T00:00+05:00``), which ``datetime`` cannot hold."""
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def first_time(*candidates: datetime | None, default: datetime) -> datetime:
    for candidate in candidates:
        if candidate is not None:
            return candidate
    return default
