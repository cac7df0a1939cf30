"""Everything stored about one person, as JSON: the answer to a data-subject access request
(GDPR Art. 15).

The subscriber row (every column), the consent details, the status history, the confirmation
mails, the deliveries of each send with its week, the events (matched to them, or naming
their address unmatched, with the raw payload as the provider sent it) and any batch payload
kept for a repeat. The rows are found as ``audience.erasure`` finds them (``traces``), so
what is exported is what an erasure takes out. Times are ISO 8601.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime
from typing import Any, TextIO

import sqlalchemy as sa

from ..clock import utc_now
from ..errors import SubscriberError
from ..store.tables import (
    confirmations,
    consent_details,
    deliveries,
    sends,
    status_changes,
    subscribers,
)
from .lookup import describe_address, parse_or_raise
from .traces import Traces, person_batches, person_events


def person_record(engine: sa.Engine, email: str) -> dict[str, Any]:
    """What is stored about the subscriber with this address; SubscriberError if none."""
    address = parse_or_raise(email)
    record = _record(engine, subscribers.c.email_key == address.key)
    if record is None:
        raise SubscriberError(describe_address(engine, address))
    return record


def subscriber_record(engine: sa.Engine, subscriber_id: int) -> dict[str, Any] | None:
    """``person_record`` of the subscriber with this id (the web's data download, whose
    link names the subscriber); None if there is none."""
    return _record(engine, subscribers.c.id == subscriber_id)


def _record(engine: sa.Engine, which: sa.ColumnElement[bool]) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(subscribers).where(which)).first()
        if row is None:
            return None
        traces = Traces(row.email, row.email_key, row.name)
        record = {
            "exported_at": utc_now(),
            "subscriber": dict(row._mapping),
            "consent": _one(conn, consent_details, consent_details.c.subscriber_id, row.id),
            "status_history": _status_history(conn, row.id),
            "confirmations": _rows(conn, sa.select(confirmations)
                                   .where(confirmations.c.subscriber_id == row.id)
                                   .order_by(confirmations.c.created_at, confirmations.c.id)),
            "deliveries": _deliveries(conn, row.id),
            "events": [_event(e) for e in person_events(conn, row.id, traces)],
            "stored_batches": [{"key": b.key, "send_id": b.send_id, "created_at": b.created_at,
                                "member": member}
                               for b, member in person_batches(conn, row.id, traces)],
        }
    return {key: _plain(value) for key, value in record.items()}


def write_json(record: dict[str, Any], dest: str | os.PathLike[str] | TextIO) -> None:
    """The record as indented JSON to an open stream, or to a path replaced atomically."""
    from ..files import atomic_writer

    text = json.dumps(record, ensure_ascii=False, indent=2) + "\n"
    if not isinstance(dest, str | os.PathLike):  # an open stream
        dest.write(text)
        return
    with atomic_writer(dest, text=True) as fh:
        fh.write(text)


def _one(conn: sa.Connection, table: sa.Table, column: sa.Column[int],
         value: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(table).where(column == value)).first()
    return dict(row._mapping) if row else None


def _rows(conn: sa.Connection, query: sa.Select[*tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(query)]


def _status_history(conn: sa.Connection, subscriber_id: int) -> list[dict[str, Any]]:
    c = status_changes.c
    return _rows(conn, sa.select(status_changes).where(c.subscriber_id == subscriber_id)
                 .order_by(c.at, c.id))


def _deliveries(conn: sa.Connection, subscriber_id: int) -> list[dict[str, Any]]:
    d, s = deliveries.c, sends.c
    query = (sa.select(s.week, d.send_id, s.subject, s.provider,
                       s.created_at.label("send_started_at"), d.status, d.attempts, d.canary,
                       d.message_id, d.error_code, d.error, d.updated_at)
             .join_from(deliveries, sends, d.send_id == s.id)
             .where(d.subscriber_id == subscriber_id).order_by(s.created_at, d.send_id))
    return _rows(conn, query)


def _event(row: sa.Row[*tuple[Any, ...]]) -> dict[str, Any]:
    out = dict(row._mapping)
    with contextlib.suppress(ValueError):  # stored as JSON text: given back as the payload
        out["raw"] = json.loads(row.raw)
    return out


def _plain(value: object) -> object:
    """JSON-ready: datetimes as ISO 8601, containers walked."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
