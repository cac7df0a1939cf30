"""This program's own CSV (what ``subscribers export`` writes), and any other CSV with an
email column: the default when no ``--from`` is given.

The columns of ``audience.model.EXPORT_COLUMNS`` are read by name (times in ISO 8601, a time
without an offset taken as UTC); any other column is an attribute. ``--map COLUMN=field``
gives a column of another name one of these fields, or first_name, last_name (the pair
becomes the name) or consent_ip (kept in the consent record), or ``ignore``.
"""

from __future__ import annotations

from ..model import EMAIL_COLUMNS, EXPORT_COLUMNS
from .base import Entry, Fields, Source, iso_time

EXPECTED = "an ISO 8601 date/time"
TIME_COLUMNS = ("consented_at", "confirmed_at", "unsubscribed_at", "created_at")

COLUMNS = {**{name: name for name in EXPORT_COLUMNS}, **{name: "email" for name in EMAIL_COLUMNS}}


def read(fields: Fields, kind: str) -> Entry:
    entry = Entry(email=fields.get("email"), name=fields.get("name"),
                  first_name=fields.get("first_name"), last_name=fields.get("last_name"),
                  status=fields.get("status") or "active", consent_ip=fields.ip("consent_ip"),
                  unsubscribe_reason=fields.get("unsubscribe_reason") or None,
                  source=fields.get("source") or None)
    # A time column present in the file is kept exactly (empty means unknown), so an export
    # imported elsewhere keeps its record; absent ones are recorded as of this import.
    entry.times = {name: fields.time(name, iso_time, EXPECTED) for name in TIME_COLUMNS
                   if name in fields}
    return entry


SOURCE = Source(name="csv", title="CSV", columns=COLUMNS, read=read,
                mappable=("first_name", "last_name", "consent_ip"))
