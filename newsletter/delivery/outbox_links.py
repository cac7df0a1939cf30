"""The outbox row a reader's link names: an address change's or a data download's.

Those links carry a token naming their outbox row (``outbox_mails``), which says whose link it
is, what it does (the row's kind) and whether it was used (``used_at``): each works once. A
row of another kind, or one that is gone (the person was erased), is no link at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..store.tables import confirmations
from .states import OutboxKind


@dataclass(frozen=True)
class LinkRow:
    id: int
    subscriber_id: int
    address: str | None  # the address the row mailed, when not the subscriber's own
    used: bool


def link_row(conn: sa.Connection, row_id: int, kind: OutboxKind, *,
             lock: bool = False) -> LinkRow | None:
    """The row of ``kind`` with this id, or None; ``lock``: for the caller's write."""
    c = confirmations.c
    query = sa.select(c.id, c.subscriber_id, c.address, c.used_at).where(
        c.id == row_id, c.kind == kind)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        return None
    return LinkRow(row.id, row.subscriber_id, row.address, row.used_at is not None)


def use(conn: sa.Connection, row_id: int, now: datetime) -> bool:
    """Within the caller's write: the link's one use; False when it was used already (by a
    request that came first)."""
    c = confirmations.c
    done = conn.execute(confirmations.update().where(c.id == row_id, c.used_at.is_(None))
                        .values(used_at=now, updated_at=now))
    return done.rowcount == 1
