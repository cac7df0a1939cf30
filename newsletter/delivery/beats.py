"""The worker's beats in the database (``service_beats``): its own heartbeat, and its last poll
of the feedback mailbox with how that went. Written by the worker's housekeeping jobs, read by
``/metrics`` (``totals``), ``status`` and the worker's ``/healthz``, so that a worker that
died, or a mailbox not read for hours, shows from any process.

One row per name, upserted. The error kept is one line of our own making, capped, with any
address blanked and the given secrets hidden: it is shown to whoever reads the metrics.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from ..store.db import begin_write
from ..store.tables import service_beats

ADDRESS = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")
MAX_ERROR = 300


class BeatName(StrEnum):
    WORKER = "worker"     # the worker is alive and its scheduler runs its jobs
    MAILBOX = "mailbox"   # the worker read the feedback mailbox (or tried to)


@dataclass(frozen=True)
class Beat:
    name: str
    at: datetime
    ok: bool
    error: str | None = None


def record(engine: sa.Engine, name: BeatName, at: datetime, *, error: str | None = None,
           secrets: Iterable[str] = ()) -> None:
    """Upsert ``name``'s beat: ``ok`` unless ``error`` (made one safe line here) is given."""
    values = {"beat_at": at, "ok": error is None,
              "error": None if error is None else safe_line(error, secrets)}
    b = service_beats.c
    update = service_beats.update().where(b.name == name).values(values)
    try:
        with begin_write(engine) as conn:  # SQLite: the write lock first, nobody in between
            if conn.execute(update).rowcount == 0:
                conn.execute(service_beats.insert().values(name=str(name), **values))
    except sa.exc.IntegrityError:  # PostgreSQL: a second worker inserted it first
        with begin_write(engine) as conn:
            conn.execute(update)


def read(conn: sa.Connection) -> dict[str, Beat]:
    """Every recorded beat by name."""
    b = service_beats.c
    rows = conn.execute(sa.select(b.name, b.beat_at, b.ok, b.error)).all()
    return {row.name: Beat(row.name, row.beat_at, bool(row.ok), row.error) for row in rows}


def read_beats(engine: sa.Engine) -> dict[str, Beat]:
    with engine.connect() as conn:
        return read(conn)


def safe_line(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` as one line fit to show: each of ``secrets`` hidden, addresses blanked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "(hidden)")
    text = ADDRESS.sub("(an address)", " ".join(text.split()))
    return text[:MAX_ERROR] or "failed"
