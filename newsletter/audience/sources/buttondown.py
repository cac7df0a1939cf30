"""Buttondown's subscriber export (Subscribers -> Export, or the API's exports).

Its columns are the subscriber object's fields: email (email_address in newer exports), id,
creation_date, subscriber_type (type in newer exports), notes, tags, metadata, referrer_url,
secondary_id, source, utm_campaign, utm_medium, utm_source. Times are ISO 8601. The type says
the standing: regular, premium, trialed, gifted, unpaid, churning, paused and past_due
receive the newsletter (active); unactivated have not confirmed (pending); unsubscribed,
and removed (taken off by the newsletter), are unsubscribed; bounced and undeliverable
addresses bounced; complained ones complained; spammy ones, which Buttondown's own checks
refused as fake sign-ups, are not imported. creation_date is the consent on record (no IP
is exported); the metadata object's keys become attributes (its name, first_name and
last_name are the name), as do notes and tags.
Sources: tests/data/imports/SOURCES.md.
"""

from __future__ import annotations

from .base import BadValue, Entry, Fields, Source, iso_time, tag_list

EXPECTED = "an ISO 8601 date/time"

COLUMNS = {
    "email": "email",
    "email_address": "email",
    "creation_date": "creation_date",
    "subscriber_type": "type",
    "type": "type",
    "notes": "notes",
    "tags": "tags",
    "metadata": "metadata",
}
IGNORED = frozenset({"id", "secondary_id", "source", "referrer_url", "utm_campaign",
                     "utm_medium", "utm_source"})

RECEIVING = ("regular", "premium", "trialed", "gifted", "unpaid", "churning", "paused",
             "past_due")
STOPPED = {"unsubscribed": ("unsubscribed", "unsubscribed in Buttondown"),
           "removed": ("unsubscribed", "removed in Buttondown"),
           "bounced": ("bounced", "bounced in Buttondown"),
           "undeliverable": ("bounced", "undeliverable in Buttondown"),
           "complained": ("complained", "complained in Buttondown")}
TYPES = (*RECEIVING, "unactivated", *STOPPED, "spammy")


def read(fields: Fields, kind: str) -> Entry:
    entry = Entry(email=fields.get("email"))
    kind_of = fields.get("type").lower() or "regular"
    if kind_of == "spammy":
        entry.skip = "marked spammy by Buttondown; not imported"
        return entry
    if kind_of == "unactivated":
        entry.status = "pending"
    elif kind_of in STOPPED:
        entry.status, entry.unsubscribe_reason = STOPPED[kind_of]
        entry.times["unsubscribed_at"] = None  # Buttondown's export does not say when
    elif kind_of not in RECEIVING:
        raise BadValue(fields.get("type"), f"{fields.header('type')}: unknown Buttondown "
                                           f"subscriber type; expected one of: {', '.join(TYPES)}")
    created = fields.time("creation_date", iso_time, EXPECTED)
    if created is not None:
        entry.times.update(consented_at=created, created_at=created,
                           confirmed_at=None if entry.status == "pending" else created)
    metadata = fields.json_object("metadata")
    # Buttondown has no name field: a newsletter keeps its readers' names in the metadata.
    for key in ("name", "first_name", "last_name"):
        value = metadata.pop(key, None)
        setattr(entry, key, value if isinstance(value, str) else None)
    entry.attributes.update(metadata)
    if notes := fields.get("notes"):
        entry.attributes["notes"] = notes
    if tags := tag_list(fields.get("tags")):
        entry.attributes["tags"] = tags
    return entry


SOURCE = Source(name="buttondown", title="Buttondown", columns=COLUMNS, read=read,
                ignored=IGNORED, extra_attributes=False)
