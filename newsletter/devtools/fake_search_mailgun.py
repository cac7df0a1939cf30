"""The fake provider's Mailgun side: what it records of a ``POST /v3/<domain>/messages``
(``records_from_form``) and its events search, ``GET /v3/<domain>/events``.

A message is recorded once per recipient with the ``v:`` variables as Mailgun's events show
them (``user-variables``), each ``%recipient.KEY%`` replaced by that recipient's value from
``recipient-variables``, as Mailgun does.

The search answers as Mailgun's events API documents it: Basic auth as ``api:<key>`` (401
``Forbidden`` without it, or with ``Faults.bad_token``); ``limit`` up to 300 (400 otherwise,
Mailgun's ``{"message": ...}``); filters ``event`` (``a OR b`` allowed), ``recipient`` and
``message-id``; a time range from ``begin`` to ``end`` (epoch seconds or an RFC 2822 date), its
direction given by their order or, without ``end``, by ``ascending``. A page is ``{"items",
"paging"}`` whose ``next``, ``previous``, ``first`` and ``last`` are URLs on the fake's own
base URL ending in an opaque page token; the page after the last one is empty, as Mailgun's
is. Items have the shape of Mailgun's ``accepted`` event. Only what
``fake_model.searchable`` shows by now is found. The fake keeps one domain's messages: the
domain in the path is not checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import time
from collections.abc import Iterable, Iterator
from email.parser import BytesParser
from email.policy import HTTP
from email.utils import formataddr, getaddresses, parseaddr, parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from .fake_model import Record, searchable

if TYPE_CHECKING:
    from .fake_provider import FakeProvider

PATH = re.compile(r"^/v3/(?P<domain>[^/]+)/events(?:/(?P<token>[A-Za-z0-9_-]+))?$")
MAX_LIMIT = 300
DEFAULT_LIMIT = 100  # the fake's choice when no limit is given
_PLACEHOLDER = re.compile(r"%recipient\.([^%]+)%")
Key = tuple[float, str]  # an event's place in time order: (timestamp, id)


# -- recording a message --------------------------------------------------------------------


def records_from_form(content_type: str, raw: bytes, message_id: str) -> list[Record]:
    """One record per recipient of a multipart/form-data messages request."""
    fields = _form(content_type, raw)
    first = {name: value for name, value in reversed(fields)}
    variables = json.loads(first.get("recipient-variables") or "{}")
    user = [(name[2:], value) for name, value in fields if name.startswith("v:")]
    records = []
    for address, to in _recipients(v for n, v in fields if n == "to"):
        mine = variables.get(address, {}) if isinstance(variables, dict) else {}
        records.append(Record(
            "mailgun", to, message_id, _fill(first.get("subject", ""), mine),
            {key: _fill(value, mine) for key, value in user},
            sender=first.get("from", "")))
    return records


def _recipients(values: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(address, To header) of each recipient: a ``to`` field may list several."""
    for value in values:
        found = getaddresses([value])
        for name, address in found:
            yield address, value if len(found) == 1 else formataddr((name, address))


def _form(content_type: str, raw: bytes) -> list[tuple[str, str]]:
    """The (name, value) fields of a multipart/form-data body, in order, each value exactly as
    sent. A plain field's part has no Content-Type, so the email parser would read it as
    ASCII; a form's fields are UTF-8, as Mailgun reads them."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields = []
    for part in message.iter_parts():
        value = part.get_payload(decode=True)
        text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else ""
        fields.append((str(part.get_param("name", header="content-disposition")), text))
    return fields


def _fill(text: str, values: dict[str, Any]) -> str:
    """Mailgun's substitution: a placeholder without a value is left as it is."""
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)


# -- the events search ----------------------------------------------------------------------


def handles(path: str) -> bool:
    return PATH.match(path) is not None


def answer(fake: FakeProvider, path: str, query: list[tuple[str, str]],
           headers: Any) -> tuple[int, Any]:
    if not _authorized(fake, headers.get("Authorization", "")):
        return 401, "Forbidden"
    match = PATH.match(path)
    assert match is not None  # handles() said so
    try:
        page = _decode(match["token"]) if match["token"] else _first_page(query)
    except ValueError as exc:
        return 400, {"message": str(exc)}
    events = _in_range(fake, page)
    items = _page(events, page)
    base = f"{fake.base_url}/v3/{match['domain']}/events"
    keys = [_key(e) for e in items]
    state = {k: v for k, v in page.items() if k not in ("after", "before", "at")}
    return 200, {
        "items": items,
        "paging": {
            "first": _url(base, {**state, "at": "first"}),
            "last": _url(base, {**state, "at": "last"}),
            # An empty page's links keep its place: asked again, they show what came since.
            "next": _url(base, {**state, "after": keys[-1]} if keys else page),
            "previous": _url(base, {**state, "before": keys[0]} if keys else page),
        },
    }


def _authorized(fake: FakeProvider, header: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, key = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return user == "api" and bool(key) and key != fake.faults.bad_token


def _first_page(query: list[tuple[str, str]]) -> dict[str, Any]:
    """A query's range, direction, filters and page size; ValueError for one Mailgun refuses."""
    params = dict(reversed(query))  # the first of a repeated parameter counts
    limit_text = params.get("limit", str(DEFAULT_LIMIT))
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise ValueError(f"'limit' must be a whole number from 1 to {MAX_LIMIT}, not "
                         f"{limit_text!r}")
    ascending = params.get("ascending")
    if ascending not in (None, "yes", "no"):
        raise ValueError(f"'ascending' must be yes or no, not {ascending!r}")
    begin = _moment(params["begin"]) if "begin" in params else None
    end = _moment(params["end"]) if "end" in params else None
    if end is not None:
        # The order of the two ends gives the direction (``ascending`` is not needed);
        # a range given only its end starts now.
        begin = time.time() if begin is None else begin
        asc = begin <= end
    else:
        asc = ascending == "yes"
        if begin is None:
            begin = 0.0 if asc else time.time()
        # No end: an ascending range grows with time, a descending one reaches back as far
        # as events are kept.
        end = math.inf if asc else 0.0
    return {"begin": begin, "end": end if math.isfinite(end) else None, "asc": asc,
            "limit": int(limit_text),
            "event": params.get("event", ""), "recipient": params.get("recipient", ""),
            "message-id": params.get("message-id", "")}


def _moment(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a valid timestamp") from None


def _in_range(fake: FakeProvider, page: dict[str, Any]) -> list[dict[str, Any]]:
    """The events the query selects, in its direction."""
    end = math.inf if page["end"] is None else page["end"]
    low, high = sorted((page["begin"], end))
    kinds = {k.strip() for k in page["event"].split(" OR ")} if page["event"] else None
    recipient = page["recipient"].casefold()
    wanted_id = page["message-id"].strip("<>")
    events = [e for e in _events(fake)
              if low <= e["timestamp"] <= high
              and (kinds is None or "accepted" in kinds)
              and (not recipient or e["recipient"].casefold() == recipient)
              and (not wanted_id or e["message"]["headers"]["message-id"] == wanted_id)]
    events.sort(key=_key, reverse=not page["asc"])
    return events


def _events(fake: FakeProvider) -> list[dict[str, Any]]:
    """The searchable records as events, each made once: a record does not change after it
    is accepted, and a search of a large send would otherwise rebuild them all per page."""
    made: dict[int, tuple[Record, dict[str, Any]]] = fake.__dict__.setdefault(
        "_mailgun_events", {})
    found = []
    for record in searchable(fake, "mailgun"):
        cached = made.get(id(record))
        if cached is None or cached[0] is not record:
            cached = made[id(record)] = (record, event(record))
        found.append(cached[1])
    return found


def _page(events: list[dict[str, Any]], page: dict[str, Any]) -> list[dict[str, Any]]:
    """The page a token (or the first query) names, in the query's direction."""
    limit, asc = page["limit"], page["asc"]

    def later(e: dict[str, Any], than: list[Any]) -> bool:
        key, mark = _key(e), (than[0], than[1])
        return key > mark if asc else key < mark

    if page.get("after") is not None:
        return [e for e in events if later(e, page["after"])][:limit]
    if page.get("before") is not None:
        return [e for e in events if not later(e, page["before"])
                and _key(e) != tuple(page["before"])][-limit:]
    if page.get("at") == "last":
        return events[-limit:]
    return events[:limit]


def _key(item: dict[str, Any]) -> Key:
    return (item["timestamp"], item["id"])


def _url(base: str, state: dict[str, Any]) -> str:
    token = base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode())
    return f"{base}/{token.decode().rstrip('=')}"


def _decode(token: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise ValueError("Invalid page token") from None
    if not isinstance(state, dict) or "limit" not in state or "asc" not in state:
        raise ValueError("Invalid page token")
    return state


def event(record: Record) -> dict[str, Any]:
    """One record as Mailgun's ``accepted`` event of it."""
    address = parseaddr(record.to)[1]
    digest = hashlib.sha256(f"{record.message_id}\0{address}".encode()).digest()
    return {
        "event": "accepted",
        "id": base64.urlsafe_b64encode(digest[:16]).decode().rstrip("="),
        "timestamp": record.accepted_at,
        "log-level": "info",
        "method": "HTTP",
        "envelope": {"sender": parseaddr(record.sender)[1], "transport": "smtp",
                     "targets": address},
        "flags": {"is-authenticated": True, "is-routed": False, "is-test-mode": False},
        "message": {
            "headers": {"to": record.to, "message-id": record.message_id.strip("<>"),
                        "from": record.sender, "subject": record.subject},
            "attachments": [],
            "size": 0,  # the fake keeps no message body
        },
        "recipient": address,
        "recipient-domain": address.rpartition("@")[2],
        "tags": [],
        "user-variables": dict(record.metadata),
    }
