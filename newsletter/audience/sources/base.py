"""What a source format is, for ``subscribers import --from``: the vocabulary every source
module speaks, and the few helpers they share.

A source is a pure mapping of another service's export file onto a subscriber: which header
names mean which of its fields (``Source.columns``), what kind of file the header says it is
(Mailchimp exports its cleaned and unsubscribed contacts as files of their own), and how one
row's cells become an ``Entry``: the address, the name, the status, the consent record (time
and IP) and the service's times in its own documented format. It reads no file and no
database: ``audience.transfer`` does both, and judges every entry by the same rules as a
plain CSV import (the address, the name, a stopped or erased address never re-added).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...json_input import UnreadableJSON, loads

IGNORE = "ignore"  # what --map calls a column to drop


class BadValue(Exception):
    """One cell a source cannot read: the row is invalid (reported with its line)."""

    def __init__(self, value: str, reason: str):
        super().__init__(reason)
        self.value, self.reason = value, reason


@dataclass
class Entry:
    """One row as a subscriber, before the import's own checks. A time left out of ``times``
    was not in the file (the import records it as of now); one given as None is unknown."""

    email: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    status: str = "active"
    times: dict[str, datetime | None] = field(default_factory=dict)
    consent_ip: str | None = None
    unsubscribe_reason: str | None = None
    source: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None  # why the service's own row is not imported (a deletion request)


class Fields:
    """One row's cells by the source's field names (only the columns the file has), and
    each field's header as the file spells it, for messages."""

    def __init__(self, cells: Mapping[str, str], headers: Mapping[str, str]):
        self._cells, self._headers = cells, headers

    def __contains__(self, name: str) -> bool:
        return name in self._cells

    def get(self, name: str) -> str:
        """The cell, spaces stripped; "" when empty or when the file has no such column."""
        return self._cells.get(name, "")

    def header(self, name: str) -> str:
        return self._headers.get(name, name)

    def time(self, name: str, parse: Callable[[str], datetime], expected: str
             ) -> datetime | None:
        """The field read by ``parse`` (None when empty); BadValue naming the column."""
        value = self.get(name)
        if not value:
            return None
        try:
            return parse(value)
        except ValueError:
            raise BadValue(value, f"{self.header(name)} is not {expected}") from None
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the year 1 in UTC
            raise BadValue(value, f"{self.header(name)} is out of range (years 1 to 9999, "
                                  "in UTC)") from None

    def ip(self, name: str) -> str | None:
        """The field as an IP address (None when empty); BadValue naming the column."""
        value = self.get(name)
        if not value:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise BadValue(value, f"{self.header(name)} is not an IP address") from None

    def json_object(self, name: str) -> dict[str, Any]:
        """The field as a JSON object ({} when empty); BadValue naming the column."""
        value = self.get(name)
        if not value:
            return {}
        try:
            parsed = loads(value)
        except UnreadableJSON as exc:
            raise BadValue(value, f"{self.header(name)} is {exc}") from None
        if not isinstance(parsed, dict):
            raise BadValue(value, f"{self.header(name)} is not a JSON object")
        return parsed


@dataclass(frozen=True)
class Source:
    """One service's export format."""

    name: str    # as --from names it
    title: str   # as messages name it
    columns: Mapping[str, str]  # header, lower-cased -> field (the email field is "email")
    read: Callable[[Fields, str], Entry]  # a row's fields and the file's kind -> Entry
    # The file's kind from its lower-cased header names (Mailchimp: which of its exports).
    kind: Callable[[frozenset[str]], str] = lambda names: "export"
    # Header names (lower-cased) that are the service's bookkeeping: dropped, not attributes.
    ignored: frozenset[str] = frozenset()
    # Whether a column the source does not know becomes an attribute (a Mailchimp merge
    # field) or is dropped.
    extra_attributes: bool = True
    email_header: str = "email"  # the address's column as the service writes it, for messages
    mappable: tuple[str, ...] = ()  # fields only --map gives a column (a plain CSV's names)

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields --map may name for this source, in a stable order."""
        return tuple(dict.fromkeys([*self.columns.values(), *self.mappable, IGNORE]))


def utc(value: datetime) -> datetime:
    """An aware UTC datetime; a time without an offset is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_time(value: str) -> datetime:
    """ISO 8601 (``2024-01-15T10:00:00.000Z``, ``2024-01-15``): what Substack and Buttondown
    write, and this program's own export. ValueError otherwise."""
    return utc(datetime.fromisoformat(value))


def truthy(value: str) -> bool:
    """A CSV boolean as the services write them (``true``, ``TRUE``, ``1``, ``yes``)."""
    return value.strip().lower() in ("true", "t", "1", "yes", "y")


def tag_list(value: str) -> list[str]:
    """A tags cell as a list: a JSON array of strings, or comma-separated with each tag
    unquoted (Mailchimp writes ``"VIP","Blog"``); empty tags dropped."""
    if value.startswith("["):
        try:
            parsed = loads(value)
        except UnreadableJSON:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(tag, str) for tag in parsed):
            return [tag.strip() for tag in parsed if tag.strip()]
    tags = (tag.strip().strip('"[]').strip() for tag in value.split(","))
    return [tag for tag in tags if tag]
