"""Importing a CSV file into the subscriber list (the export is ``audience.export``).

The import is one transaction: a failed import writes nothing. It adds new addresses only: one
already on the list is left exactly as it is (so re-importing a file changes nothing), and it
never re-activates an address that is unsubscribed, bounced or complained, nor re-adds one erased
on request. Invalid rows abort the whole import unless the caller asks to skip them.

Every file is read through a source (``audience.sources``): this program's own CSV by
default, or another service's export (``--from mailchimp``); the source maps each row to a
subscriber, and this module judges it. Addresses, names, statuses and the erased-address
hashes follow the rules of ``newsletter.audience.subscribers``, whose helpers this module
uses; it changes no existing subscriber. An imported subscriber's consent IP, when the file
has one, is its first consent-details row (``audience.consent_details``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..clock import utc_now
from ..errors import SubscriberError
from ..store.db import begin_write
from ..text import has_control
from . import bulk, consent_details, sources
from .addresses import Address, clean_name, email_hash, parse_address
from .model import EMAIL_COLUMNS, ERASED_MESSAGE, EXPORT_COLUMNS, STATUSES, STOPPED
from .sources.base import BadValue, Entry, Fields, Source
from .sources.layout import Layout, plan
from .subscribers import attribute_name

if TYPE_CHECKING:
    from .csvfile import CsvRow


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class RowProblem:
    line: int
    value: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.value!r}: {self.reason}"


@dataclass
class ImportReport:
    path: str
    dry_run: bool = False
    rows: int = 0  # data rows read (blank lines not counted)
    added: int = 0  # new subscribers (that would be added, in a dry run)
    unchanged: int = 0  # already on the list: left exactly as they are
    not_resubscribed: list[RowProblem] = field(default_factory=list)
    duplicates: list[RowProblem] = field(default_factory=list)
    invalid: list[RowProblem] = field(default_factory=list)
    skipped: list[RowProblem] = field(default_factory=list)  # rows the source does not import
    # New subscribers (that would be added, in a dry run) per status, in STATUSES order.
    by_status: dict[str, int] = field(default_factory=dict)
    source: str | None = None  # the service whose export it was ("Mailchimp"); None: a CSV
    written: bool = False

    def notes(self) -> list[RowProblem]:
        """Every row not imported, with why, in file order."""
        return sorted(self.not_resubscribed + self.duplicates + self.invalid + self.skipped,
                      key=lambda p: p.line)


class ImportAborted(SubscriberError):
    """Invalid rows and no ``--skip-invalid``: nothing was written. ``report`` lists the rows."""

    def __init__(self, report: ImportReport):
        self.report = report
        verb = "would be imported" if report.dry_run else "imported"
        super().__init__(
            f"{report.path}: {len(report.invalid)} invalid row(s); nothing {verb} "
            "(fix them, or use --skip-invalid to import the valid rows)"
        )


def import_csv(
    engine: sa.Engine,
    path: str | os.PathLike[str],
    dry_run: bool = False,
    skip_invalid: bool = False,
    source: str | None = None,
    mapping: Mapping[str, str] | None = None,
) -> ImportReport:
    """Import a CSV file in one transaction; see ImportReport for what happened to each row.

    ``source`` names the service whose export the file is (``audience.sources``; None: a
    plain CSV), ``mapping`` gives columns a field by hand ({column: field}, ``--map``).
    New addresses are added; addresses already on the list are left exactly as they are (so
    re-importing a file changes nothing); stopped or erased addresses are never re-subscribed.
    Invalid rows abort the whole import (ImportAborted) unless ``skip_invalid``.
    """
    from .csvfile import read_csv

    kind = sources.find(source)
    data = read_csv(path)
    layout = plan(kind, data.path, data.header_line, data.columns, mapping or {})
    native = kind is sources.native.SOURCE
    report = ImportReport(path=str(path), dry_run=dry_run, rows=len(data.rows),
                          source=None if native else kind.title)
    label = f"import:{Path(path).name}" if native else f"import:{kind.name}:{Path(path).name}"
    candidates = _parse_rows(data.rows, kind, layout, label, report)
    if report.invalid and not skip_invalid:
        raise ImportAborted(report)
    if dry_run:
        with engine.connect() as conn:
            _insert_new(conn, candidates, report, write=False)
        return report
    # COPY (PostgreSQL) runs on the driver's cursor, so its errors come unwrapped.
    driver = engine.dialect.dbapi
    assert driver is not None  # store.db's engines always load their driver
    integrity_errors = (sa.exc.IntegrityError, driver.IntegrityError)
    try:
        with begin_write(engine) as conn:
            _insert_new(conn, candidates, report, write=True)
    except integrity_errors:
        raise SubscriberError(
            f"{path}: the list changed while importing; nothing was imported, run it again"
        ) from None
    report.written = True
    return report


def _parse_rows(rows: list[CsvRow], kind: Source, layout: Layout, label: str,
                report: ImportReport) -> list[tuple[int, dict[str, Any]]]:
    """Validate every row; collect problems in ``report``; return (line, values) to insert."""
    now = utc_now()
    first_line: dict[str, int] = {}
    out: list[tuple[int, dict[str, Any]]] = []
    for row in rows:
        fields = layout.read(row.cells)
        raw_email = fields.get("email")
        try:
            address = parse_address(raw_email)
        except SubscriberError as exc:
            report.invalid.append(RowProblem(row.line, raw_email, str(exc)))
            continue
        if address.key in first_line:
            reason = f"duplicate of line {first_line[address.key]}; counted once"
            report.duplicates.append(RowProblem(row.line, address.email, reason))
            continue
        first_line[address.key] = row.line
        try:
            values = _read_row(row, fields, kind, layout, address, label, now)
        except BadValue as bad:
            report.invalid.append(RowProblem(row.line, bad.value, bad.reason))
            continue
        if isinstance(values, str):
            report.skipped.append(RowProblem(row.line, address.email, values))
            continue
        out.append((row.line, values))
    return out


def _read_row(row: CsvRow, fields: Fields, kind: Source, layout: Layout, address: Address,
              label: str, now: datetime) -> dict[str, Any] | str:
    """The row's subscriber values, or why the source does not import it; BadValue."""
    surplus = [c for c in row.cells[layout.width:] if c.strip()]
    if surplus:
        raise BadValue(surplus[0], "more fields than the header has columns")
    entry = kind.read(fields, layout.kind)
    if entry.skip:
        return entry.skip
    return _row_values(entry, layout.attribute_values(row.cells), address, label, now)


def _row_values(entry: Entry, extra: dict[str, Any], address: Address, label: str,
                now: datetime) -> dict[str, Any]:
    """The subscriber row of an entry (and its consent IP, under ``consent_ip``)."""
    status = entry.status
    if status not in STATUSES:
        raise BadValue(status, f"unknown status; expected one of: {', '.join(STATUSES)}")
    given = entry.name or " ".join(p for p in (entry.first_name, entry.last_name) if p)
    try:
        name = clean_name(given or None) or address.name
    except SubscriberError as exc:
        raise BadValue(given, str(exc)) from None
    times = dict(entry.times)
    times.setdefault("consented_at", now)
    times.setdefault("confirmed_at", now if status == "active" else None)
    times.setdefault("unsubscribed_at", None)
    times["created_at"] = times.get("created_at") or now
    return dict(
        email=address.email,
        email_key=address.key,
        name=name,
        status=status,
        source=_one_line(entry.source) or label,
        attributes=_attributes({**extra, **entry.attributes}),
        unsubscribe_reason=_one_line(entry.unsubscribe_reason),
        updated_at=now,
        consent_ip=entry.consent_ip,
        **times,
    )


def _attributes(values: dict[str, Any]) -> dict[str, Any]:
    """A source's attributes under their stored names; a reserved or repeated one, or a NUL,
    makes the row invalid (the same rules as ``subscribers add --attr``)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = attribute_name(str(key))
        if not name or name in EXPORT_COLUMNS or name in EMAIL_COLUMNS or name in out:
            raise BadValue(str(key), f"attribute {key!r} is empty, reserved or given twice")
        if _has_nul(value):
            raise BadValue(str(value), f"attribute {name!r} contains a NUL character")
        out[name] = value
    return out


def _has_nul(value: Any) -> bool:
    """Whether a NUL is anywhere in an attribute's value (JSON from a file nests): PostgreSQL
    refuses it in JSONB."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _one_line(value: str | None) -> str | None:
    if value and has_control(value):
        raise BadValue(value, "source must be a single line")
    return value


def _insert_new(
    conn: sa.Connection,
    candidates: list[tuple[int, dict[str, Any]]],
    report: ImportReport,
    write: bool,
) -> None:
    """Sort candidates into new / unchanged / not re-subscribed; insert the new ones."""
    keys = [values["email_key"] for _, values in candidates]
    existing = bulk.existing_statuses(conn, keys)
    erased = bulk.erased_hashes(conn, [email_hash(k) for k in keys])
    new_rows: list[dict[str, Any]] = []
    for line, values in candidates:
        key = values["email_key"]
        status = existing.get(key)
        if email_hash(key) in erased:
            report.not_resubscribed.append(RowProblem(line, values["email"], ERASED_MESSAGE))
        elif status in STOPPED:
            reason = f"{status}; not re-subscribed"
            report.not_resubscribed.append(RowProblem(line, values["email"], reason))
        elif status is not None:
            report.unchanged += 1
        else:
            new_rows.append(values)
    report.added = len(new_rows)
    counts = Counter(values["status"] for values in new_rows)
    report.by_status = {str(s): counts[s] for s in STATUSES if counts[s]}
    ips = {values["email_key"]: ip for values in new_rows if (ip := values.pop("consent_ip"))}
    if not write or not new_rows:
        return
    bulk.insert_rows(conn, new_rows)
    now = new_rows[0]["updated_at"]  # each row's import time is the same
    keys = [values["email_key"] for values in new_rows]
    detail = f"imported from {Path(report.path).name}"
    bulk.record_added(conn, keys, now, detail if report.source is None
                      else f"{detail} ({report.source})")
    ids = bulk.ids_of(conn, list(ips))
    consent_details.save_many(conn, [dict(subscriber_id=ids[key], consent_ip=ip, updated_at=now)
                                     for key, ip in ips.items()])
