"""The batched reads ``matching`` makes: each takes many values and costs a query or a few."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import sqlalchemy as sa

from ..store.tables import deliveries, sends, subscribers
from ._sql import storable

_CHUNK = 400
Row = tuple[int, int]  # (send id, subscriber id)
_Key = TypeVar("_Key", int, str)  # what the lookups look for: ids, or text


def sends_by_week(conn: sa.Connection, weeks: set[str]) -> dict[str, list[tuple[int, str]]]:
    """week -> [(send id, content hash)]."""
    out: dict[str, list[tuple[int, str]]] = {}
    query = sa.select(sends.c.id, sends.c.week, sends.c.content_hash)
    for row in _in(conn, query, sends.c.week, weeks):
        out.setdefault(row.week, []).append((row.id, row.content_hash))
    return out


def ledger_ids(conn: sa.Connection, values: set[str]
               ) -> tuple[dict[str, tuple[int, int, str]], set[str]]:
    """For each message id the ledger holds: its one row with the subscriber's key, or (SendGrid
    and Mailgun answer one id per request) the fact that several rows share it.

    Returns (id -> (send id, subscriber id, email key), shared ids); a row whose subscriber
    was erased since is left out.
    """
    d, s = deliveries.c, subscribers.c
    query = (sa.select(d.message_id, sa.func.count(), sa.func.min(d.send_id),
                       sa.func.min(d.subscriber_id), sa.func.min(s.email_key))
             .select_from(deliveries.outerjoin(subscribers, s.id == d.subscriber_id))
             .group_by(d.message_id))
    single, shared = {}, set()
    for message_id, n, send_id, subscriber_id, key in _in(conn, query, d.message_id, values):
        if n > 1:
            shared.add(message_id)
        elif key is not None:
            single[message_id] = (send_id, subscriber_id, key)
    return single, shared


def shared_rows(conn: sa.Connection, values: set[str], subscriber_ids: set[int],
                keys: set[str]) -> list[tuple[str, int, int, str]]:
    """The rows of shared ids for the subscribers named by id or by address key:
    (message id, send id, subscriber id, email key)."""
    subscriber_ids = {i for i in subscriber_ids if i is not None}
    keys = {k for k in keys if k and storable(k)}
    if not values or not (subscriber_ids or keys):
        return []
    d, s = deliveries.c, subscribers.c
    who = sa.or_(d.subscriber_id.in_(sorted(subscriber_ids)), s.email_key.in_(sorted(keys)))
    query = (sa.select(d.message_id, d.send_id, d.subscriber_id, s.email_key)
             .select_from(deliveries.join(subscribers, s.id == d.subscriber_id)).where(who))
    return [tuple(r) for r in _in(conn, query, d.message_id, values)]


def existing_pairs(conn: sa.Connection, pairs: set[Row]) -> set[Row]:
    """Those of ``pairs`` the ledger has a row for."""
    found: set[Row] = set()
    by_send: dict[int, set[int]] = {}
    for send_id, subscriber_id in pairs:
        by_send.setdefault(send_id, set()).add(subscriber_id)
    for send_id, subscriber_ids in by_send.items():
        query = sa.select(deliveries.c.send_id, deliveries.c.subscriber_id).where(
            deliveries.c.send_id == send_id)
        found |= {(r.send_id, r.subscriber_id) for r in
                  _in(conn, query, deliveries.c.subscriber_id, subscriber_ids)}
    return found


def keys_by_id(conn: sa.Connection, ids: set[int]) -> dict[int, str]:
    query = sa.select(subscribers.c.id, subscribers.c.email_key)
    return {r.id: r.email_key for r in _in(conn, query, subscribers.c.id, ids)}


def ids_by_key(conn: sa.Connection, keys: set[str]) -> dict[str, int]:
    query = sa.select(subscribers.c.id, subscribers.c.email_key)
    return {r.email_key: r.id for r in _in(conn, query, subscribers.c.email_key, keys)}


def last_sent(conn: sa.Connection, subscriber_ids: set[int]) -> dict[int, int]:
    """subscriber id -> the newest send that reached them, for those we ever mailed."""
    d = deliveries.c
    query = (sa.select(d.subscriber_id, sa.func.max(d.send_id))
             .where(d.status == "sent").group_by(d.subscriber_id))
    return {r[0]: r[1] for r in _in(conn, query, d.subscriber_id, subscriber_ids)}


def _in(conn: sa.Connection, query: sa.Select[*tuple[Any, ...]], column: sa.Column[Any],
        values: Iterable[_Key | None]) -> list[sa.Row[*tuple[Any, ...]]]:
    """``query`` for every value, a chunk at a time; values no row can hold are left out."""
    rows: list[sa.Row[*tuple[Any, ...]]] = []
    for chunk in _chunks(sorted(v for v in values
                                if v is not None and v != "" and storable(v))):
        rows += conn.execute(query.where(column.in_(chunk))).all()
    return rows


def _chunks(values: list[_Key]) -> Iterable[list[_Key]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]
