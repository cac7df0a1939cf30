"""Substack's subscriber export: the ``email_list.<publication>.csv`` of its export zip.

Columns: email, active_subscription, expiry, plan, email_disabled, created_at,
first_payment_at (older exports: email, active_subscription, expiry, email_disabled,
created_at; some carry a name). Times are ISO 8601 (``2024-01-15T10:00:00.000Z``; older files
a bare date). A subscriber whose email is disabled receives nothing: imported as unsubscribed.
An address at ``deletion-request.substack.com`` is Substack's placeholder for a reader who
asked to be deleted: not imported. created_at is the consent on record; Substack exports no
IP. Whether the reader pays is kept as the attributes ``paid``, ``plan`` and ``expiry``.
Sources: tests/data/imports/SOURCES.md.
"""

from __future__ import annotations

from .base import Entry, Fields, Source, iso_time, truthy

EXPECTED = "an ISO 8601 date/time"
DELETION_DOMAIN = "@deletion-request.substack.com"

COLUMNS = {
    "email": "email",
    "name": "name",
    "active_subscription": "active_subscription",
    "expiry": "expiry",
    "plan": "plan",
    "email_disabled": "email_disabled",
    "created_at": "created_at",
}


def read(fields: Fields, kind: str) -> Entry:
    email = fields.get("email")
    if email.lower().endswith(DELETION_DOMAIN):
        return Entry(email=email, skip="a Substack deletion request; not imported")
    created = fields.time("created_at", iso_time, EXPECTED)
    entry = Entry(email=email, name=fields.get("name"))
    if created is not None:
        entry.times = {"consented_at": created, "confirmed_at": created, "created_at": created}
    if truthy(fields.get("email_disabled")):
        entry.status = "unsubscribed"
        entry.times["unsubscribed_at"] = None  # Substack does not say when
        entry.unsubscribe_reason = "email disabled in Substack"
    if "active_subscription" in fields:
        entry.attributes["paid"] = truthy(fields.get("active_subscription"))
    for name in ("plan", "expiry"):
        if value := fields.get(name):
            entry.attributes[name] = value
    return entry


# Unknown columns (Stripe's customer id, first_payment_at, digests) are Substack's billing
# and delivery bookkeeping: dropped.
SOURCE = Source(name="substack", title="Substack", columns=COLUMNS, read=read,
                extra_attributes=False)
