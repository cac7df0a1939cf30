"""What every webhook module needs: headers by any case, JSON bodies, timestamp windows, and
the one event a verified but unusable body is kept as."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ... import json_input
from ..events import Event, EventKind, MalformedPayload, StaleRequest, UnusablePayload, digest_id


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
    """The body's JSON value, or MalformedPayload: not UTF-8, not JSON, or nested too deep
    (``json_input``, which refuses that before anything recurses)."""
    try:
        return json_input.loads(body)
    except json_input.UnreadableJSON as exc:
        raise MalformedPayload(f"{provider} webhook: the body is {exc}", status=status) from None


def unusable(provider: str, body: bytes, problem: UnusablePayload,
             received_at: datetime) -> Event:
    """A verified body of a shape the parser does not read, kept whole as one ``unknown``
    event that names nobody (``inbound`` says for which providers); its id is a digest of the
    body, so a retry of the delivery is stored once."""
    raw = body.decode("utf-8")  # load_json has decoded it already
    return Event(provider=provider, kind=EventKind.UNKNOWN,
                 event_id=digest_id(provider, "unusable", raw), recipient="",
                 occurred_at=received_at, reason=f"unusable payload: {problem.reason}",
                 raw=raw)


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


def json_object(value: object) -> dict[str, Any]:
    """A JSON object as it is, anything else (null, a list, text) as an empty one."""
    return value if isinstance(value, dict) else {}


def secrets_list(value: str | Sequence[str] | None) -> list[str]:
    """A secret or several (rotation): a list, or a comma-separated string."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]
