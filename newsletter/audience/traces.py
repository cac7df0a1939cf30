"""Where one person shows up besides their subscriber row: the events and the stored batches
that name them, and the forms their address is written in there.

An address reaches the database and the outbox in several spellings: as the subscriber gave
it, lower-cased, with its domain in Unicode or in its ASCII (IDNA 2008) form, in either case,
percent-encoded in a URL. ``Traces`` recognises all of them, case-insensitively, and can
replace them (and the person's name) in a text. Erasure and the export of one person's data
both find the person's rows here, so what is exported is what is erased.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TypeAlias, overload
from urllib.parse import quote

import sqlalchemy as sa

from ..errors import NewsletterError
from ..store.tables import batches, events
from .addresses import ascii_domain

ERASED = "[erased]"

# A decoded JSON value, as a JSON column or json.loads gives it.
JsonValue: TypeAlias = "str | int | float | bool | None | list[JsonValue] | dict[str, JsonValue]"


class Traces:
    """The forms of one address (and a name) to look for in stored text."""

    def __init__(self, email: str, key: str, name: str | None = None):
        forms = _address_forms(email, key)
        # The coarse filter: ASCII under today's rules, and in every form of the address.
        self.local = key.rpartition("@")[0] or key.strip()
        self.name = (name or "").strip()
        self._address = _alternation(forms)
        self._personal = _alternation(forms | ({self.name} if self.name else set()))

    def mentions(self, text: str | None) -> bool:
        """Whether ``text`` holds the address in any of its forms."""
        if not text:
            return False
        return self._address.search(text) is not None

    def mentions_json(self, raw: str | None) -> bool:
        """``mentions`` for JSON text, looked for in its decoded strings (so that ``\\u00e4``
        and ``ä`` are one)."""
        if self.mentions(raw):
            return True
        try:
            value = json.loads(raw or "null")
        except ValueError:
            return False
        return any(self.mentions(text) for text in _strings(value))

    @overload
    def scrub(self, text: str) -> str: ...
    @overload
    def scrub(self, text: None) -> None: ...

    def scrub(self, text: str | None) -> str | None:
        """``text`` with the address (any form) and the name replaced by ``ERASED``."""
        if not text:
            return text
        return self._personal.sub(ERASED, text)

    def scrub_value(self, value: JsonValue) -> JsonValue:
        """``scrub`` through a JSON value: every string in it, keys included."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub_value(item) for item in value]
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub_value(v) for k, v in value.items()}
        return value


def _address_forms(email: str, key: str) -> set[str]:
    # As stored, whatever it is (a row from before today's rules may not even have an @) ...
    forms = {value for value in (email.strip(), key.strip()) if value}
    for value in set(forms):
        local, _, domain = value.rpartition("@")
        if not local or not domain:
            continue
        # ... and with its domain in its other spellings.
        for spelling in {_ascii(domain), _unicode(domain)} - {None, ""}:
            forms.add(f"{local}@{spelling}")
    # Webhook payloads and links carry addresses in URLs too ("zoe%40example.org").
    return forms | {quote(form, safe="") for form in forms}


def _ascii(domain: str) -> str | None:
    try:
        return ascii_domain(domain)
    except NewsletterError:  # a row stored before today's rules: its other forms still count
        return None


def _unicode(domain: str) -> str | None:
    if "xn--" not in domain.lower():
        return domain
    import idna

    try:
        return idna.decode(domain)
    except (idna.IDNAError, UnicodeError):
        return None


def _alternation(texts: set[str]) -> re.Pattern[str]:
    if not texts:
        return re.compile(r"(?!)")  # nothing to look for matches nothing, never everything
    # Longest first, so that "zoe@exämple.de" is replaced whole, not "zoe@ex..." in part.
    ordered = sorted(texts, key=len, reverse=True)
    return re.compile("|".join(re.escape(text) for text in ordered), re.IGNORECASE)


def _strings(value: JsonValue) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)


# -- the rows that name a person ---------------------------------------------------------------


def person_events(conn: sa.Connection, subscriber_id: int | None,
                  traces: Traces) -> list[sa.Row[*tuple[Any, ...]]]:
    """The events matched to the subscriber, and the unmatched ones that name the address.

    The database narrows the unmatched events down by the part before the @ (ASCII, so
    SQLite's ASCII-only ``lower`` is enough); the forms themselves are checked here. Events
    matched to another subscriber are not read: a report names the one recipient it is about.
    """
    t = events.c
    own = t.subscriber_id == subscriber_id if subscriber_id is not None else sa.false()
    named = sa.or_(*(column.icontains(traces.local, autoescape=True)
                     for column in (t.recipient, t.raw, t.reason)))
    query = (sa.select(events).where(sa.or_(own, sa.and_(t.subscriber_id.is_(None), named)))
             .order_by(t.occurred_at, t.id))
    return [row for row in conn.execute(query)
            if (subscriber_id is not None and row.subscriber_id == subscriber_id)
            or traces.mentions(row.recipient) or traces.mentions(row.reason)
            or traces.mentions_json(row.raw)]


def person_batches(conn: sa.Connection, subscriber_id: int | None,
                   traces: Traces) -> list[tuple[sa.Row[*tuple[Any, ...]], dict[str, Any]]]:
    """The stored batch payloads (kept for a repeat under the batch's key) that carry the
    person, each with the person's entry in it."""
    query = sa.select(batches).where(batches.c.members.is_not(None)).order_by(batches.c.created_at)
    found: list[tuple[sa.Row[*tuple[Any, ...]], dict[str, Any]]] = []
    for row in conn.execute(query):
        for member in row.members or ():
            if ((subscriber_id is not None and member.get("id") == subscriber_id)
                    or traces.mentions(member.get("email"))):
                found.append((row, member))
                break
    return found
