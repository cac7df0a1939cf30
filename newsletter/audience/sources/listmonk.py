"""listmonk's subscriber export (Subscribers -> Export, ``/api/subscribers/export``).

Its header is fixed: uuid, email, name, attributes, status, created_at, updated_at.
attributes is the subscriber's JSON object (its keys become attributes); status is enabled,
disabled or blocklisted. A disabled or blocklisted subscriber receives nothing: imported as
unsubscribed, updated_at standing for when (the export has no other time for it). Times are
written by Go's ``time.Time.String``: ``2024-03-14 09:12:31.123456 +0000 UTC`` (fraction
optional, then the offset and the zone's abbreviation). created_at is the consent on record;
listmonk exports no IP. A ``subscription_status`` column (a list's export) of ``unconfirmed``
makes an enabled subscriber pending. Sources: tests/data/imports/SOURCES.md.
"""

from __future__ import annotations

import re
from datetime import datetime

from .base import BadValue, Entry, Fields, Source, utc

EXPECTED = "a listmonk date/time (YYYY-MM-DD HH:MM:SS[.fraction] +HHMM ZONE)"

COLUMNS = {
    "email": "email",
    "name": "name",
    "attributes": "attributes",
    "status": "status",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "subscription_status": "subscription_status",
}
IGNORED = frozenset({"uuid"})
STATUSES = {"enabled": None, "disabled": "disabled in listmonk",
            "blocklisted": "blocklisted in listmonk"}

# Go's "2006-01-02 15:04:05.999999999 -0700 MST"; a time read from the clock may carry the
# monotonic reading after it (" m=+0.000000001").
_GO_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))? ([+-]\d{2})(\d{2})"
                      r"(?: [A-Za-z0-9+-]{1,8})?(?: m=[+-]\d+\.\d+)?")


def parse_time(value: str) -> datetime:
    """A Go ``time.Time.String`` as an aware UTC datetime (to the microsecond); ValueError
    otherwise."""
    match = _GO_TIME.fullmatch(value)
    if match is None:
        raise ValueError(value)
    day, clock, fraction, hours, minutes = match.groups()
    micro = f".{(fraction or '0')[:6]:0<6}"
    return utc(datetime.fromisoformat(f"{day}T{clock}{micro}{hours}:{minutes}"))


def read(fields: Fields, kind: str) -> Entry:
    status = fields.get("status").lower() or "enabled"
    if status not in STATUSES:
        raise BadValue(fields.get("status"), f"{fields.header('status')}: unknown listmonk "
                                             f"status; expected one of: {', '.join(STATUSES)}")
    entry = Entry(email=fields.get("email"), name=fields.get("name"),
                  attributes=fields.json_object("attributes"))
    created = fields.time("created_at", parse_time, EXPECTED)
    if created is not None:
        entry.times.update(consented_at=created, created_at=created, confirmed_at=created)
    if reason := STATUSES[status]:
        entry.status, entry.unsubscribe_reason = "unsubscribed", reason
        entry.times["unsubscribed_at"] = fields.time("updated_at", parse_time, EXPECTED)
    elif fields.get("subscription_status").lower() == "unconfirmed":
        entry.status = "pending"
        entry.times["confirmed_at"] = None
    elif fields.get("subscription_status").lower() == "unsubscribed":
        entry.status, entry.unsubscribe_reason = "unsubscribed", "unsubscribed in listmonk"
        entry.times["unsubscribed_at"] = fields.time("updated_at", parse_time, EXPECTED)
    return entry


SOURCE = Source(name="listmonk", title="listmonk", columns=COLUMNS, read=read,
                ignored=IGNORED, extra_attributes=False)
