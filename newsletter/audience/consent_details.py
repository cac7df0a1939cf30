"""The subscriber's ``consent_details`` row (the IP, user agent and wording of the consent on
record, and how an unsubscribe was made): written only by ``audience.changes``, alongside the
status change it belongs to, and by the import (``audience.transfer``) for the subscribers it
creates with a consent IP from the file, in one upsert on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..store.tables import consent_details
from .history import one_line

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite


def save(conn: sa.Connection, subscriber_id: int, now: datetime, **values: str | None) -> None:
    """Insert or update the subscriber's row (one statement on both backends)."""
    changed = {**values, "updated_at": now}
    statement = _insert(conn)(consent_details).values(subscriber_id=subscriber_id, **changed)
    conn.execute(statement.on_conflict_do_update(index_elements=["subscriber_id"], set_=changed))


def save_many(conn: sa.Connection, rows: list[dict[str, object]]) -> None:
    """``save`` for many rows at once (one executemany); every row has the same keys."""
    if not rows:
        return
    statement = _insert(conn)(consent_details)
    columns = [k for k in rows[0] if k != "subscriber_id"]
    conn.execute(statement.on_conflict_do_update(
        index_elements=["subscriber_id"],
        set_={k: getattr(statement.excluded, k) for k in columns}), rows)


def stored(value: str | None) -> str | None:
    """A user agent or wording as stored: one line, bounded (it is shown to the operator)."""
    return one_line(value)


def _insert(conn: sa.Connection) -> Callable[[sa.Table], postgresql.Insert | sqlite.Insert]:
    """The connection's dialect's INSERT, which has ON CONFLICT DO UPDATE on both."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
