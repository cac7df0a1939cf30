"""Mailchimp's audience export, as it comes out of the zip: ``subscribed_members_export_*.csv``,
``unsubscribed_members_export_*.csv`` and ``cleaned_members_export_*.csv``.

The three files share the columns "Email Address", the audience's merge fields by their
labels ("First Name", "Last Name", ...), then Mailchimp's own: MEMBER_RATING, OPTIN_TIME,
OPTIN_IP, CONFIRM_TIME, CONFIRM_IP, LATITUDE ... LAST_CHANGED, LEID, EUID, NOTES, TAGS; the
unsubscribed file adds UNSUB_TIME, UNSUB_CAMPAIGN_TITLE, UNSUB_CAMPAIGN_ID, UNSUB_REASON and
UNSUB_REASON_OTHER, the cleaned file CLEAN_TIME, CLEAN_CAMPAIGN_TITLE and CLEAN_CAMPAIGN_ID.
So the header says which file it is, and each imports as it was exported: subscribed as
active, unsubscribed as unsubscribed, cleaned (hard bounces) as bounced, with those times.
Times are ``YYYY-MM-DD HH:MM:SS`` in GMT, as Mailchimp's export API documents them. The
sign-up's time and IP (OPTIN_*) are the consent on record, the confirmation's (CONFIRM_*)
stand in for them when the contact was added without a sign-up form. Other merge fields
become attributes. Sources: tests/data/imports/SOURCES.md.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .base import Entry, Fields, Source, tag_list

EXPECTED = "a Mailchimp date/time (YYYY-MM-DD HH:MM:SS)"

COLUMNS = {
    "email address": "email",
    "name": "name",  # an audience with one name field instead of the pair
    "first name": "first_name",
    "last name": "last_name",
    "optin_time": "optin_time",
    "optin_ip": "optin_ip",
    "confirm_time": "confirm_time",
    "confirm_ip": "confirm_ip",
    "tags": "tags",
    "unsub_time": "unsub_time",
    "unsub_reason": "unsub_reason",
    "unsub_reason_other": "unsub_reason_other",
    "clean_time": "clean_time",
}
# Mailchimp's bookkeeping: its rating, geolocation, ids and campaign references.
IGNORED = frozenset({
    "member_rating", "latitude", "longitude", "gmtoff", "dstoff", "timezone", "cc", "region",
    "last_changed", "leid", "euid", "notes", "unsub_campaign_title", "unsub_campaign_id",
    "clean_campaign_title", "clean_campaign_id",
})


def parse_time(value: str) -> datetime:
    """``2024-03-14 09:12:31`` (GMT) as an aware UTC datetime; ValueError otherwise."""
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def file_kind(names: frozenset[str]) -> str:
    """Which of the three exports a header is: its stop time says so."""
    if "clean_time" in names:
        return "cleaned"
    if "unsub_time" in names:
        return "unsubscribed"
    return "subscribed"


def read(fields: Fields, kind: str) -> Entry:
    optin = fields.time("optin_time", parse_time, EXPECTED)
    confirm = fields.time("confirm_time", parse_time, EXPECTED)
    entry = Entry(email=fields.get("email"), name=fields.get("name"),
                  first_name=fields.get("first_name"),
                  last_name=fields.get("last_name"),
                  consent_ip=fields.ip("optin_ip") or fields.ip("confirm_ip"))
    known = {"consented_at": optin or confirm, "confirmed_at": confirm or optin,
             "created_at": optin or confirm}
    entry.times = {k: v for k, v in known.items() if v is not None}
    if tags := tag_list(fields.get("tags")):
        entry.attributes["tags"] = tags
    if kind == "unsubscribed":
        entry.status = "unsubscribed"
        entry.times["unsubscribed_at"] = fields.time("unsub_time", parse_time, EXPECTED)
        why = fields.get("unsub_reason_other") or fields.get("unsub_reason")
        entry.unsubscribe_reason = f"unsubscribed in Mailchimp: {why}" if why else (
            "unsubscribed in Mailchimp")
    elif kind == "cleaned":
        entry.status = "bounced"
        entry.times["unsubscribed_at"] = fields.time("clean_time", parse_time, EXPECTED)
        entry.unsubscribe_reason = "cleaned by Mailchimp (the address bounced)"
    return entry


SOURCE = Source(name="mailchimp", title="Mailchimp", columns=COLUMNS, read=read,
                kind=file_kind, ignored=IGNORED, email_header="Email Address")
