"""Exporting the subscriber list as CSV, in the format ``audience.transfer`` imports, so an
export round-trips the list (cells that a spreadsheet would take for a formula are neutralized
by ``csvfile``, and the import restores them)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import TextIO

import sqlalchemy as sa

from ..errors import SubscriberError
from .lookup import check_status, iter_subscribers
from .model import EXPORT_COLUMNS, Subscriber


def export_csv(
    engine: sa.Engine, dest: str | os.PathLike[str] | TextIO, status: str | None = None
) -> int:
    """Write subscribers as CSV (the format import reads) to a path or an open text stream.

    A path is replaced atomically. Attributes become one column each. Returns the row count.
    """
    from ..files import atomic_writer
    from .csvfile import write_rows

    if status is not None:
        check_status(status)
    keys = attribute_keys(engine, status)
    columns = list(EXPORT_COLUMNS) + keys
    rows = (subscriber_row(sub, keys) for sub in iter_subscribers(engine, status))
    if not isinstance(dest, str | os.PathLike):  # an open stream
        return write_rows(dest, columns, rows)
    try:
        with atomic_writer(dest, text=True) as fh:
            return write_rows(fh, columns, rows)
    except OSError as exc:
        raise SubscriberError(f"cannot write {dest}: {exc.strerror}") from None


def attribute_keys(engine: sa.Engine, status: str | None = None) -> list[str]:
    """Every attribute name in use, sorted; computed by the database, not by loading rows."""
    where = "WHERE s.status = :status" if status else ""
    if engine.dialect.name == "postgresql":
        sql = f"SELECT DISTINCT jsonb_object_keys(s.attributes) FROM subscribers s {where}"
    else:
        sql = f"SELECT DISTINCT j.key FROM subscribers s, json_each(s.attributes) j {where}"
    with engine.connect() as conn:
        keys = conn.execute(sa.text(sql), {"status": status} if status else {}).scalars()
        return sorted(keys)


def subscriber_row(sub: Subscriber, attribute_keys: list[str]) -> list[str]:
    """One CSV row in EXPORT_COLUMNS order, then the attributes."""
    out = [
        sub.email,
        sub.name or "",
        sub.status,
        sub.source,
        *(_iso(getattr(sub, col)) for col in EXPORT_COLUMNS[4:]),
    ]
    for key in attribute_keys:
        value = sub.attributes.get(key)
        out.append("" if value is None else value if isinstance(value, str) else json.dumps(value))
    return out


def _iso(value: datetime | str | None) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, datetime) else value
