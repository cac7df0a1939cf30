"""Small SQL helpers for both databases: insert-or-ignore, storable text, one-line errors."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

# What neither database stores in text: NUL (PostgreSQL refuses it) and lone surrogates (not
# encodable as UTF-8).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def insert_ignoring_duplicates(conn: sa.Connection, table: sa.Table,
                               keys: list[str]) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table).on_conflict_do_nothing(index_elements=keys)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)


def error_line(exc: BaseException) -> str:
    """A database error in one line, fit for a log: the driver's own first line, not
    SQLAlchemy's message, which repeats the statement and its parameters (addresses, payloads).
    """
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return f"{type(orig).__name__}: {text.splitlines()[0]}" if text else type(orig).__name__


def storable(value: object) -> bool:
    """False for text a query could not even send (a lookup value no row can hold)."""
    return not (isinstance(value, str) and UNSTORABLE.search(value))
