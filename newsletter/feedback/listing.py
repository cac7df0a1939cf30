"""Reading the event log back: every stored event, oldest first, streamed page by page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..store.tables import events, sends

COLUMNS = ("id", "received_at", "occurred_at", "provider", "kind", "recipient", "reason",
           "code", "week", "subscriber_id", "matched_by", "effect", "event_id",
           "provider_message_id", "message_id")


@dataclass(frozen=True)
class LoggedEvent:
    id: int
    received_at: datetime
    occurred_at: datetime
    provider: str
    kind: str
    recipient: str
    reason: str
    code: str
    week: str | None
    subscriber_id: int | None
    matched_by: str
    effect: str | None
    event_id: str
    provider_message_id: str
    message_id: str
    metadata: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in COLUMNS}
        for key in ("received_at", "occurred_at"):
            out[key] = out[key].isoformat()
        out["metadata"] = dict(self.metadata)
        return out

    def cells(self) -> list[str]:
        """The CSV row: every column as text ('' for none)."""
        values = self.as_dict()
        return ["" if values[c] is None else str(values[c]) for c in COLUMNS]


def iter_events(engine: sa.Engine, *, week: str | None = None, kind: str | None = None,
                chunk: int = 1000) -> Iterator[LoggedEvent]:
    """Events (of ``week``'s send, of ``kind``), each page its own short read."""
    e = events.c
    query = (sa.select(events, sends.c.week)
             .select_from(events.outerjoin(sends, sends.c.id == e.send_id)))
    if week is not None:
        query = query.where(sends.c.week == week)
    if kind is not None:
        query = query.where(e.kind == kind)
    last = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(query.where(e.id > last).order_by(e.id).limit(chunk)).all()
        for r in rows:
            yield LoggedEvent(r.id, r.received_at, r.occurred_at, r.provider, r.kind,
                              r.recipient, r.reason, r.code, r.week, r.subscriber_id,
                              r.matched_by, r.effect, r.event_id, r.provider_message_id,
                              r.message_id, dict(r.meta or {}))
        if len(rows) < chunk:
            return
        last = rows[-1].id
