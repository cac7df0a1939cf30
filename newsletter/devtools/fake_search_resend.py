"""The fake provider's Resend sent-email list: ``GET /emails``.

Answered as Resend's API reference and pagination guide describe it: the API key as a Bearer
token is required (401 without it, or for ``Faults.bad_token``); ``limit`` is 1 to 100 (20 when
left out); ``after`` (the id of the last email of the page before) pages towards older emails,
``before`` (the id of the first one) towards newer, never both at once; a bad value is refused
with 422 in Resend's error shape, ``{"statusCode", "name", "message"}``. The emails come newest
first as ``{"object": "list", "has_more", "data"}``, each shaped like the spec's ``Email`` as
the list returns it (no body, no tags). Only what ``fake_model.searchable`` shows by now is
listed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .fake_model import Record, searchable

if TYPE_CHECKING:
    from .fake_provider import FakeProvider

PATH = "/emails"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def handles(path: str) -> bool:
    return path == PATH


def answer(fake: FakeProvider, path: str, query: list[tuple[str, str]],
           headers: Any) -> tuple[int, Any]:
    token = str(headers.get("Authorization") or "").removeprefix("Bearer ").strip()
    if not token:
        return _error(401, "missing_api_key", "Missing API key in the authorization header.")
    if fake.faults.bad_token and token == fake.faults.bad_token:
        return _error(401, "invalid_api_key", "API key is invalid.")
    params = dict(reversed(query))  # the first of a repeated parameter counts
    emails = list(reversed(searchable(fake, "resend")))  # newest first
    try:
        limit = _limit(params.get("limit"))
        start, end = _window(emails, params, limit)
    except ValueError as exc:
        return _error(422, "validation_error", str(exc))
    page = emails[start:end]
    more = end < len(emails) if "before" not in params else start > 0
    return 200, {"object": "list", "has_more": more, "data": [listed(r) for r in page]}


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise ValueError(f"The `limit` parameter must be a number between 1 and {MAX_LIMIT}.")
    return int(value)


def _window(emails: list[Record], params: dict[str, str], limit: int) -> tuple[int, int]:
    """The page's slice of ``emails``: after a cursor, the ``limit`` next older ones; before
    one, the ``limit`` newer ones just ahead of it; the cursor itself never included."""
    if "after" in params and "before" in params:
        raise ValueError("You can only use either `after` or `before`, not both.")
    if "after" in params:
        start = _position(emails, params["after"]) + 1
        return start, start + limit
    if "before" in params:
        end = _position(emails, params["before"])
        return max(end - limit, 0), end
    return 0, limit


def _position(emails: list[Record], cursor: str) -> int:
    for index, record in enumerate(emails):
        if record.message_id == cursor:
            return index
    # Resend's guide does not say what an unknown cursor gets; refusing it is the honest
    # answer for a fake, and a client that pages on cannot mistake it for the list's end.
    raise ValueError(f"The cursor `{cursor}` is not the id of an email.")


def listed(record: Record) -> dict[str, Any]:
    """One email as the list shows it (the fields of Resend's example answer). ``to`` is the
    recipient as the request gave it: the fake keeps one text per message."""
    created = datetime.fromtimestamp(record.accepted_at, UTC)
    return {
        "id": record.message_id,
        "to": [record.to],
        "from": record.sender,
        "created_at": created.isoformat(),
        "subject": record.subject,
        "bcc": [],
        "cc": [],
        "reply_to": [],
        "last_event": "sent",
        "scheduled_at": None,
    }


def _error(status: int, name: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"statusCode": status, "name": name, "message": message}
