"""The event log: every event stored once, with what it was matched to, in one transaction.

``record(conn, events, matches, received_at=...)`` writes a request's (or a mail's) events
inside the caller's transaction: a row per event, keyed on (provider, event_id), so an event a
provider repeats is stored once (``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and
PostgreSQL alike). It answers which events were new and which stored events still wait for
their effect: an event whose effect has not been applied yet (the process died in between) is
handed back again when the provider repeats it, so its effect is never lost.

Values are stored so that both databases take them: text columns lose NUL and lone
surrogates (replaced by U+FFFD), and ``raw`` is the payload as JSON text, lossless (NUL as
the JSON escape ``\\u0000``; a mail report as one JSON string).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar, overload

import sqlalchemy as sa

from ..audience.erasure import erased_among, scrubbed_event
from ..store.tables import events as events_table
from ._sql import UNSTORABLE, insert_ignoring_duplicates
from .events import Event, EventKind
from .matching import Match

# The kinds that change a subscriber (``effects``); the others are stored with effect "none".
EFFECT_KINDS = frozenset({EventKind.BOUNCED, EventKind.COMPLAINED, EventKind.UNSUBSCRIBED,
                          EventKind.DEFERRED})
NO_EFFECT = "none"
_MAX_TEXT = 4000  # a reason or code longer than this is an MTA's whole transcript
_CHUNK = 400
_T = TypeVar("_T")


@dataclass(frozen=True)
class Pending:
    """A stored event whose effect on its subscriber is still to be applied."""

    id: int
    provider: str
    kind: EventKind
    subscriber_id: int
    send_id: int | None
    reason: str
    occurred_at: datetime


@dataclass
class Recorded:
    new: int = 0
    duplicates: int = 0
    pending: list[Pending] = field(default_factory=list)


def clean(value: object, limit: int = _MAX_TEXT) -> str:
    """Text both databases store: no NUL, no lone surrogates, bounded."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    return UNSTORABLE.sub("\ufffd", text)[:limit]


def raw_json(raw: Any) -> str:
    """The payload as JSON text, exactly recoverable with ``json.loads``."""
    try:
        text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str)
        text.encode("utf-8")  # lone surrogates cannot be stored as UTF-8 ...
    except UnicodeEncodeError:
        text = json.dumps(raw, ensure_ascii=True, separators=(",", ":"), default=str)
    return text  # ... and JSON escapes every control character, NUL included


def needs_effect(kind: EventKind, match: Match) -> bool:
    return kind in EFFECT_KINDS and match.subscriber_id is not None


def event_row(event: Event, match: Match, received_at: datetime) -> dict[str, Any]:
    waits = needs_effect(event.kind, match)
    return {
        "provider": clean(event.provider, 16),
        "event_id": clean(event.event_id, 1000),
        "kind": str(event.kind),
        "recipient": clean(event.recipient, 512),
        "reason": clean(event.reason),
        "code": clean(event.code, 200),
        "provider_message_id": clean(event.provider_message_id, 1000),
        "message_id": clean(event.message_id, 1000),
        "meta": {clean(k, 100): clean(v) for k, v in event.metadata.items()},
        "raw": raw_json(event.raw),
        "occurred_at": event.occurred_at,
        "received_at": received_at,
        "subscriber_id": match.subscriber_id,
        "send_id": match.send_id,
        "matched_by": match.by,
        "effect": None if waits else NO_EFFECT,
        "applied_at": None if waits else received_at,
    }


def record(conn: sa.Connection, events: Sequence[Event], matches: Sequence[Match], *,
           received_at: datetime) -> Recorded:
    """Store ``events`` (each with its match) in the caller's transaction."""
    return record_many(conn, [(events, matches, received_at)])[0]


def record_many(conn: sa.Connection,
                groups: Sequence[tuple[Sequence[Event], Sequence[Match], datetime]]
                ) -> list[Recorded]:
    """``record`` for several requests' events (each group: events, matches, received_at) in
    one insert and one read, as a burst of single-event webhooks needs."""
    rows, owner = [], {}  # owner: (provider, event_id) -> the group that stores it
    erased = erased_among(conn, {e.recipient for events, _, _ in groups for e in events})
    for index, (events, matches, received_at) in enumerate(groups):
        for event, match in zip(events, matches, strict=True):
            row = event_row(event, match, received_at)
            if event.recipient in erased:  # a late event about someone erased
                row.update(scrubbed_event(row, erased[event.recipient]))
            key = (row["provider"], row["event_id"])
            if key not in owner:  # the same event twice in a request, or in two, is one
                owner[key] = index
                rows.append(row)
    results = [Recorded() for _ in groups]
    if not rows:
        return results
    stored = _stored(conn, owner)
    fresh = [row for row in rows if (row["provider"], row["event_id"]) not in stored]
    # A plain executemany, not INSERT ... RETURNING: psycopg parses a long multi-row
    # statement anew each time, which made RETURNING cost twice the insert itself. ON
    # CONFLICT still keeps an event another process stored meanwhile (PostgreSQL) once; on
    # SQLite the write lock, held from BEGIN, rules that out.
    insert = insert_ignoring_duplicates(conn, events_table, ["provider", "event_id"])
    for chunk in _chunks(fresh, _CHUNK):
        conn.execute(insert, chunk)
    for row in fresh:
        results[owner[(row["provider"], row["event_id"])]].new += 1
    for result, (events, _, _) in zip(results, groups, strict=True):
        result.duplicates = len(events) - result.new
    # Waiting for their effect: the new events that have one, and any stored before.
    maybe = stored | {(r["provider"], r["event_id"]) for r in fresh if r["effect"] is None}
    for key, pending in waiting(conn, maybe, with_keys=True):
        results[owner[key]].pending.append(pending)
    return results


def _stored(conn: sa.Connection, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Those of ``keys`` (provider, event_id) already in the log."""
    by_provider: dict[str, list[str]] = {}
    for provider, event_id in keys:
        by_provider.setdefault(provider, []).append(event_id)
    t = events_table
    found = set()
    for provider, event_ids in by_provider.items():
        for chunk in _chunks(event_ids, _CHUNK):
            query = sa.select(t.c.event_id).where(t.c.provider == provider,
                                                  t.c.event_id.in_(chunk))
            found |= {(provider, event_id) for event_id in conn.execute(query).scalars()}
    return found


@overload
def waiting(conn: sa.Connection, keys: Iterable[tuple[str, str]], *,
            with_keys: Literal[False] = False) -> list[Pending]: ...
@overload
def waiting(conn: sa.Connection, keys: Iterable[tuple[str, str]], *,
            with_keys: Literal[True]) -> list[tuple[tuple[str, str], Pending]]: ...


def waiting(conn: sa.Connection, keys: Iterable[tuple[str, str]], *, with_keys: bool = False
            ) -> list[Pending] | list[tuple[tuple[str, str], Pending]]:
    """The events among ``keys`` whose effect is still to apply, oldest first (with their
    (provider, event_id) key when ``with_keys``)."""
    by_provider: dict[str, list[str]] = {}
    for provider, event_id in keys:
        by_provider.setdefault(provider, []).append(event_id)
    t = events_table
    out: list[tuple[tuple[str, str], Pending]] = []
    for provider, event_ids in by_provider.items():
        for chunk in _chunks(event_ids, _CHUNK):
            query = (sa.select(t.c.id, t.c.provider, t.c.kind, t.c.subscriber_id, t.c.send_id,
                               t.c.reason, t.c.occurred_at, t.c.event_id)
                     .where(t.c.provider == provider, t.c.event_id.in_(chunk),
                            t.c.effect.is_(None), t.c.subscriber_id.is_not(None)))
            out += [((r.provider, r.event_id),
                     Pending(r.id, r.provider, EventKind(r.kind), r.subscriber_id, r.send_id,
                             r.reason, r.occurred_at)) for r in conn.execute(query)]
    out.sort(key=lambda item: (item[1].occurred_at, item[1].id))
    return out if with_keys else [pending for _, pending in out]


def mark_applied(conn: sa.Connection, effects: dict[int, str], at: datetime) -> None:
    """Note what each event did (``effects``: event row id -> effect), in one statement."""
    if not effects:
        return
    t = events_table
    statement = (t.update().where(t.c.id == sa.bindparam("b_id"))
                 .values(effect=sa.bindparam("b_effect"), applied_at=at))
    conn.execute(statement, [{"b_id": i, "b_effect": e[:32]} for i, e in effects.items()])


def _chunks(items: list[_T], size: int) -> Iterable[list[_T]]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]
