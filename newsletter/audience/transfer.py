"""Importing a CSV file into the subscriber list (the export is ``audience.export``).

The import is one transaction: a failed import writes nothing. It adds new addresses only: one
already on the list is left exactly as it is (so re-importing a file changes nothing), and it
never re-activates an address that is unsubscribed, bounced or complained, nor re-adds one erased
on request. Invalid rows abort the whole import unless the caller asks to skip them.

Addresses, names, statuses and the erased-address hashes follow the rules of
``newsletter.audience.subscribers``, whose helpers this module uses; it changes no existing
subscriber.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..clock import utc_now
from ..errors import SubscriberError
from ..store.db import begin_write
from ..text import has_control, strip_spaces
from . import bulk
from .addresses import Address, clean_name, email_hash, parse_address
from .model import EMAIL_COLUMNS, ERASED_MESSAGE, EXPORT_COLUMNS, STATUSES, STOPPED
from .subscribers import attribute_name

if TYPE_CHECKING:
    from .csvfile import CsvRow

TIME_COLUMNS = ("consented_at", "confirmed_at", "unsubscribed_at", "created_at")


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
    written: bool = False

    def notes(self) -> list[RowProblem]:
        """Every row not imported, with why, in file order."""
        return sorted(self.not_resubscribed + self.duplicates + self.invalid, key=lambda p: p.line)


class ImportAborted(SubscriberError):
    """Invalid rows and no ``--skip-invalid``: nothing was written. ``report`` lists the rows."""

    def __init__(self, report: ImportReport):
        self.report = report
        verb = "would be imported" if report.dry_run else "imported"
        super().__init__(
            f"{report.path}: {len(report.invalid)} invalid row(s); nothing {verb} "
            "(fix them, or use --skip-invalid to import the valid rows)"
        )


@dataclass
class _Columns:
    email: int
    known: dict[str, int]  # lower-cased known column -> index
    extra: dict[str, int]  # attribute name as written -> index
    width: int  # columns named in the header


def import_csv(
    engine: sa.Engine,
    path: str | os.PathLike[str],
    dry_run: bool = False,
    skip_invalid: bool = False,
) -> ImportReport:
    """Import a CSV file in one transaction; see ImportReport for what happened to each row.

    New addresses are added; addresses already on the list are left exactly as they are (so
    re-importing a file changes nothing); stopped or erased addresses are never re-subscribed.
    Invalid rows abort the whole import (ImportAborted) unless ``skip_invalid``.
    """
    from .csvfile import read_csv

    data = read_csv(path)
    report = ImportReport(path=str(path), dry_run=dry_run, rows=len(data.rows))
    columns = _map_columns(data.path, data.header_line, data.columns)
    source = f"import:{Path(path).name}"
    candidates = _parse_rows(data.rows, columns, source, report)
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


def _map_columns(path: Path, line: int, names: list[str]) -> _Columns:
    lowered = [name.lower() for name in names]
    email = next((lowered.index(c) for c in EMAIL_COLUMNS if c in lowered), None)
    if email is None:
        if any("@" in name for name in names):
            raise SubscriberError(
                f"{path}: no header row (line {line} looks like data); "
                "add a first line such as 'email,name'"
            )
        raise SubscriberError(
            f"{path}, line {line}: no 'email' column in the header (found: {', '.join(names)})"
        )
    known = {n: i for i, n in enumerate(lowered) if n in EXPORT_COLUMNS and i != email}
    extra: dict[str, int] = {}
    for i, name in enumerate(names):
        if i == email or lowered[i] in EXPORT_COLUMNS or lowered[i] in EMAIL_COLUMNS:
            continue
        key = attribute_name(name)
        if not key or key in extra or key in EXPORT_COLUMNS or key in EMAIL_COLUMNS:
            raise SubscriberError(
                f"{path}, line {line}: column {name!r} cannot be an attribute "
                f"(it becomes {key!r}, which is empty, reserved or another column's name)"
            )
        extra[key] = i
    return _Columns(email, known, extra, len(names))


def _parse_rows(
    rows: list[CsvRow], columns: _Columns, source: str, report: ImportReport
) -> list[tuple[int, dict[str, Any]]]:
    """Validate every row; collect problems in ``report``; return (line, values) to insert."""
    now = utc_now()
    first_line: dict[str, int] = {}
    out: list[tuple[int, dict[str, Any]]] = []
    for row in rows:
        cells = row.cells
        raw_email = _cell(cells, columns.email)
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
            values = _row_values(cells, columns, address, source, now)
        except _BadCell as bad:
            report.invalid.append(RowProblem(row.line, bad.value, bad.reason))
            continue
        out.append((row.line, values))
    return out


class _BadCell(Exception):
    def __init__(self, value: str, reason: str):
        self.value, self.reason = value, reason


def _row_values(
    cells: list[str], columns: _Columns, address: Address, source: str, now: datetime
) -> dict[str, Any]:
    known = {name: _cell(cells, i) for name, i in columns.known.items()}
    surplus = [c for c in cells[columns.width :] if c.strip()]
    if surplus:
        raise _BadCell(surplus[0], "more fields than the header has columns")
    status = known.get("status") or "active"
    if status not in STATUSES:
        raise _BadCell(status, f"unknown status; expected one of: {', '.join(STATUSES)}")
    try:
        name = clean_name(known.get("name")) or address.name
    except SubscriberError as exc:
        raise _BadCell(known.get("name", ""), str(exc)) from None
    times = {col: _parse_time(known[col], col) for col in TIME_COLUMNS if col in known}
    # A consent column present in the file is kept exactly (empty means unknown), so an export
    # imported elsewhere keeps its record; absent ones are recorded as of this import.
    times.setdefault("consented_at", now)
    times.setdefault("confirmed_at", now if status == "active" else None)
    times.setdefault("unsubscribed_at", None)
    times["created_at"] = times.get("created_at") or now
    attributes = {k: v for k, i in columns.extra.items() if (v := _cell(cells, i))}
    return dict(
        email=address.email,
        email_key=address.key,
        name=name,
        status=status,
        source=_one_line(known.get("source")) or source,
        attributes=attributes,
        unsubscribe_reason=known.get("unsubscribe_reason") or None,
        updated_at=now,
        **times,
    )


def _cell(cells: list[str], index: int) -> str:
    # Spaces go, a line break or control character stays (and is refused by the checks).
    return strip_spaces(cells[index]) if index < len(cells) else ""


def _one_line(value: str | None) -> str | None:
    if value and has_control(value):
        raise _BadCell(value, "source must be a single line")
    return value


def _parse_time(value: str, column: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        # A time without an offset is taken as UTC.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        raise _BadCell(value, f"{column} is not an ISO 8601 date/time") from None
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the year 1 in UTC
        raise _BadCell(value, f"{column} is out of range (years 1 to 9999, in UTC)") from None


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
    if write:
        bulk.insert_rows(conn, new_rows)
        if new_rows:  # each row's import time is the same
            bulk.record_added(conn, [values["email_key"] for values in new_rows],
                              new_rows[0]["updated_at"], f"imported from {Path(report.path).name}")
