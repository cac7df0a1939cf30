"""What every webhook module needs: headers by any case, JSON bodies, timestamp windows."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..events import MalformedPayload, StaleRequest


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value whatever the case of its name; '' when absent.

    Works for plain dicts as well as the case-insensitive mappings of Starlette and httpx.
    """
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value.strip()
    return ""


def load_json(body: bytes, provider: str, *, status: int | None = None) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise MalformedPayload(f"{provider} webhook: the body is not JSON",
                               status=status) from None


def check_window(signed_at: datetime, now: datetime, tolerance: timedelta, provider: str,
                 *, status: int | None = None) -> None:
    """Refuse a signed timestamp further than ``tolerance`` from ``now``, either way."""
    if abs(now - signed_at) > tolerance:
        raise StaleRequest(
            f"{provider} webhook: signed timestamp {signed_at:%Y-%m-%dT%H:%M:%SZ} is more than "
            f"{int(tolerance.total_seconds())} s from now", status=status)


def text(value: object) -> str:
    """A JSON value as one line of text ('' for null and non-scalars)."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float | str):
        return " ".join(str(value).split())
    return ""


def secrets_list(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """A secret or several (rotation): a list, or a comma-separated string."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]
