"""The fake provider's Postmark outbound message search: ``GET /messages/outbound``.

Answered as Postmark's Messages API documents it: the server token is required (401,
ErrorCode 10, without it); ``count`` and ``offset`` are required, ``count`` is at most 500 and
``count + offset`` at most 10,000 (422 otherwise, Postmark's ``{"ErrorCode", "Message"}``);
results are filtered by ``recipient``, ``tag``, ``status``, ``messagestream``, ``fromdate`` /
``todate`` (naive US Eastern times, inclusive) and one ``metadata_<key>``, newest first, as
``{"TotalCount", "Messages"}`` whose items have the shape of Postmark's OutboundMessageDetail.
Only what ``fake_model.searchable`` shows by now is found.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .fake_model import Record, searchable

if TYPE_CHECKING:
    from .fake_provider import FakeProvider

PATH = "/messages/outbound"
MAX_COUNT = 500
MAX_WINDOW = 10_000  # count + offset
EASTERN = ZoneInfo("America/New_York")
# Postmark's list of error codes puts its Messages API's in the 700s; which one a refused
# query gets is not documented in what we read, and no client of ours depends on it.
QUERY_ERROR = 700


def handles(path: str) -> bool:
    return path == PATH


def answer(fake: FakeProvider, path: str, query: list[tuple[str, str]],
           headers: Any) -> tuple[int, Any]:
    token = headers.get("X-Postmark-Server-Token")
    if not token:
        return 401, {"ErrorCode": 10, "Message": "No Account or Server API tokens were "
                     "supplied in the HTTP headers."}
    if fake.faults.bad_token and token == fake.faults.bad_token:
        return 401, {"ErrorCode": 10, "Message": "Bad or missing Server API token."}
    params = dict(reversed(query))  # the first of a repeated parameter counts
    try:
        count, offset = _window(params)
        keep = _filters(params, query)
    except ValueError as exc:
        return 422, {"ErrorCode": QUERY_ERROR, "Message": str(exc)}
    found = [r for r in reversed(searchable(fake, "postmark")) if keep(r)]
    return 200, {"TotalCount": len(found),
                 "Messages": [detail(r) for r in found[offset:offset + count]]}


def _window(params: dict[str, str]) -> tuple[int, int]:
    values = []
    for name in ("count", "offset"):
        if name not in params:
            raise ValueError(f"The '{name}' parameter is required.")
        value = params[name]
        if not value.isdigit():
            raise ValueError(f"The '{name}' parameter must be a whole number.")
        values.append(int(value))
    count, offset = values
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f"Count must be between 1 and {MAX_COUNT}.")
    if count + offset > MAX_WINDOW:
        raise ValueError(f"Count + Offset cannot exceed {MAX_WINDOW:,} messages.")
    return count, offset


def _filters(params: dict[str, str], query: list[tuple[str, str]]):
    """A predicate on records for the query's filters; ValueError for a filter refused."""
    metadata = [(name.removeprefix("metadata_"), value) for name, value in query
                if name.startswith("metadata_")]
    if len(metadata) > 1:
        raise ValueError("Only one metadata filter can be used at a time.")
    since = _eastern(params["fromdate"], end=False) if params.get("fromdate") else None
    until = _eastern(params["todate"], end=True) if params.get("todate") else None
    recipient = params.get("recipient", "").casefold()
    stream = params.get("messagestream")
    status = params.get("status")

    def keep(record: Record) -> bool:
        received = datetime.fromtimestamp(record.accepted_at, UTC)
        return ((since is None or received >= since)
                and (until is None or received < until)
                and (not recipient or _address(record)[1].casefold() == recipient)
                and ("tag" not in params or params["tag"] == "")   # the fake keeps no tags
                and (status is None or status == "sent")           # all it keeps is sent
                and (stream is None or record.stream == stream)
                and all(str(record.metadata.get(k)) == v for k, v in metadata))

    return keep


def _eastern(value: str, *, end: bool) -> datetime:
    """A ``fromdate`` / ``todate``: a date or a naive date and time in Eastern time. Both
    ends are inclusive: the end is the moment after the second (or the day) it names."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"'{value}' is not a valid date.") from None
    if moment.tzinfo is not None:
        raise ValueError(f"'{value}' is not a valid date: Eastern time, without an offset.")
    if end:
        moment += timedelta(seconds=1) if "T" in value else timedelta(days=1)
    return moment.replace(tzinfo=EASTERN)


def _address(record: Record) -> tuple[str, str]:
    """The display name (decoded) and the address of the record's ``To``."""
    name, email = parseaddr(record.to)
    return str(make_header(decode_header(name))) if name else "", email


def detail(record: Record) -> dict[str, Any]:
    """One result, shaped like Postmark's OutboundMessageDetail (with the MessageStream and
    Metadata its current documentation adds)."""
    name, email = _address(record)
    received = datetime.fromtimestamp(record.accepted_at, EASTERN)
    return {
        "Tag": "",
        "MessageID": record.message_id,
        "MessageStream": record.stream,
        "To": [{"Email": email, "Name": name}],
        "Cc": [],
        "Bcc": [],
        "Recipients": [email],
        "ReceivedAt": received.isoformat(),
        "Subject": record.subject,
        "Attachments": [],
        "Status": "Sent",
        "TrackOpens": False,
        "TrackLinks": "None",
        "Metadata": dict(record.metadata),
    }
