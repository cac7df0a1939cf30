"""Who is sending: each sender holds a lock that the system releases when its process dies,
so "already in progress" is true however long a live sender is paused, and the rows of a
dead one are recovered at once.

SQLite
    An exclusive ``flock`` on ``<database>-send-lock``, held for the whole run: one sender per
    database file. Whoever holds it is the only sender alive, so on taking it every row left
    in flight is an orphan. The file names the holder (pid, host, week, since) for the
    "already in progress" message.
PostgreSQL
    Several senders share a send (claims use ``FOR UPDATE SKIP LOCKED``). Each holds a
    session advisory lock, keyed by its worker id, on a connection of its own; the server
    drops it when that connection ends, with the process or the machine. A sender whose lock
    can be taken is dead: its rows in flight become ``unknown``. (A heartbeat would call a
    paused but live sender dead and let its answers be thrown away.)

A live sender still writes a heartbeat (``heartbeat_at``, every ``BEAT_EVERY`` seconds, from a
thread of its own), but only for people: ``/metrics`` shows it, and a stall names "no sender"
only when none has beaten lately. Nothing decides from it who is alive.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

import sqlalchemy as sa

from ...clock import utc_now
from ...store.db import begin_write
from ...store.tables import deliveries, send_workers
from ..states import DeliveryStatus
from .sends import SendError, SendRecord, mark_sending

_PG_NAMESPACE = 7_246_002  # the first key of every sender's advisory lock (arbitrary)


class AlreadyInProgress(SendError):
    pass


BEAT_EVERY = 30.0  # seconds between a live sender's heartbeats (for monitoring only)

log = logging.getLogger("newsletter.send")


@dataclass
class RegisteredSender:
    """A registered sender: its id (what its claims carry) and the lock that proves it lives."""

    worker_id: str
    send_id: int
    # An open file (SQLite; None for a database in memory) or a connection (PostgreSQL).
    lock: TextIO | sa.Connection | None = field(repr=False, default=None)
    # Set when the sender ends (or is abandoned): its heartbeat thread stops.
    stopped: threading.Event = field(repr=False, default_factory=threading.Event)


def register(engine: sa.Engine, send: SendRecord, *,
             beat_every: float = BEAT_EVERY) -> RegisteredSender:
    """Take the sender's lock and record it; recover rows that dead senders left in flight;
    start its heartbeat.

    On SQLite a live sender (of any week) makes this raise AlreadyInProgress.
    """
    worker_id = f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    sender = RegisteredSender(worker_id, send.id)
    if engine.dialect.name == "sqlite":
        sender.lock = _lock_file(engine, send)
    else:
        sender.lock = _advisory_lock(engine, worker_id)
    try:
        stamp = utc_now()
        with begin_write(engine) as conn:
            _forget_dead(conn, me=worker_id)
            conn.execute(send_workers.insert().values(
                id=worker_id, send_id=send.id, hostname=socket.gethostname(),
                pid=os.getpid(), started_at=stamp, heartbeat_at=stamp))
            _recover(conn, send.id, stamp)
            mark_sending(conn, send.id, stamp)
    except BaseException:
        _drop_lock(sender)
        raise
    threading.Thread(target=_beat, args=(engine, sender, beat_every), daemon=True,
                     name=f"sender-heartbeat-{send.id}").start()
    return sender


def _beat(engine: sa.Engine, sender: RegisteredSender, every: float) -> None:
    """``heartbeat_at`` refreshed until the sender ends; a failed beat waits for the next."""
    while not sender.stopped.wait(every):
        try:
            with begin_write(engine) as conn:
                conn.execute(send_workers.update()
                             .where(send_workers.c.id == sender.worker_id)
                             .values(heartbeat_at=utc_now()))
        except Exception as exc:  # the send matters more than its heartbeat
            log.debug("sender heartbeat not written: %s", exc)


def release(engine: sa.Engine, sender: RegisteredSender) -> None:
    """The sender's normal end: its record removed, then its lock (at once: a closed
    session's locks go only when the server has noticed)."""
    try:
        with begin_write(engine) as conn:
            conn.execute(send_workers.delete().where(send_workers.c.id == sender.worker_id))
    finally:
        if isinstance(sender.lock, sa.Connection):
            with contextlib.suppress(Exception):
                sender.lock.execute(sa.text("SELECT pg_advisory_unlock(:ns, :key)"),
                                    {"ns": _PG_NAMESPACE, "key": _lock_key(sender.worker_id)})
        _drop_lock(sender)


def abandon(sender: RegisteredSender) -> None:
    """Let the lock go with nothing cleaned up, as a dying process does (tests)."""
    _drop_lock(sender)


def recover(engine: sa.Engine, send_id: int) -> None:
    """Hand the rows of senders that died meanwhile over as ``unknown`` (PostgreSQL; on SQLite
    no other sender can be alive while this one holds the lock)."""
    if engine.dialect.name == "sqlite":
        return
    stamp = utc_now()
    with begin_write(engine) as conn:
        _forget_dead(conn)
        _recover(conn, send_id, stamp)


def holder(engine: sa.Engine, send: SendRecord) -> str | None:
    """Who is sending ``send`` right now, as words for an error message; None if nobody."""
    if engine.dialect.name == "sqlite":
        try:
            _drop_lock(RegisteredSender("", send.id, _lock_file(engine, send)))
        except AlreadyInProgress as exc:
            return str(exc)
        return None
    with begin_write(engine) as conn:
        _forget_dead(conn)
        row = conn.execute(sa.select(send_workers)
                           .where(send_workers.c.send_id == send.id)).first()
    if row is None:
        return None
    return (f"a send of {send.week} is in progress (pid {row.pid} on {row.hostname}, since "
            f"{row.started_at:%H:%M:%S} UTC)")


# -- SQLite: a file lock --------------------------------------------------------------------

def lock_path(engine: sa.Engine) -> Path | None:
    database = engine.url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().with_name(Path(database).name + "-send-lock")


def _lock_file(engine: sa.Engine, send: SendRecord) -> TextIO | None:
    path = lock_path(engine)
    if path is None:  # an in-memory database lives in this process only
        return None
    try:
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
    except OSError as exc:
        raise SendError(f"cannot open the sender lock {path}: {exc.strerror}; this user must "
                        "be able to write beside the database") from None
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        text = fh.read()
        fh.close()
        raise AlreadyInProgress(_in_progress_message(text)) from None
    except BaseException:
        fh.close()
        raise
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "week": send.week,
                         "since": f"{utc_now():%H:%M:%S} UTC"}))
    fh.flush()
    return fh


def _in_progress_message(text: str) -> str:
    try:
        who = json.loads(text)
        return (f"a send of {who['week']} is already in progress (pid {who['pid']} on "
                f"{who['host']}, since {who['since']}); wait for it, or stop it first")
    except (ValueError, KeyError, TypeError):
        return "a send is already in progress on this database; wait for it, or stop it first"


# -- PostgreSQL: a session advisory lock per sender ------------------------------------------

def _lock_key(worker_id: str) -> int:
    return zlib.crc32(worker_id.encode()) - 2**31  # a signed 32-bit key


def _advisory_lock(engine: sa.Engine, worker_id: str) -> sa.Connection:
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        held = conn.execute(sa.text("SELECT pg_try_advisory_lock(:ns, :key)"),
                            {"ns": _PG_NAMESPACE, "key": _lock_key(worker_id)}).scalar()
    except BaseException:
        conn.close()
        raise
    if not held:  # another live sender's id has the same key: astronomically rare
        conn.close()
        raise SendError("could not take a sender lock; run the command again")
    return conn


def _alive(conn: sa.Connection, worker_id: str) -> bool:
    """Whether the sender ``worker_id`` still holds its lock (taking it for this transaction
    only, if it does not)."""
    free = conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
                        {"ns": _PG_NAMESPACE, "key": _lock_key(worker_id)}).scalar()
    return not free


def _forget_dead(conn: sa.Connection, me: str = "") -> None:
    """Remove the records of dead senders. On SQLite this runs only under the lock, whose
    holder is the one sender alive: every other record is a dead one's."""
    ids = list(conn.execute(sa.select(send_workers.c.id)).scalars())
    if conn.dialect.name == "sqlite":
        dead = [i for i in ids if i != me]
    else:
        dead = [i for i in ids if i != me and not _alive(conn, i)]
    if dead:
        conn.execute(send_workers.delete().where(send_workers.c.id.in_(dead)))


def _recover(conn: sa.Connection, send_id: int, stamp: datetime) -> None:
    d = deliveries.c
    live = sa.select(send_workers.c.id)
    conn.execute(
        deliveries.update()
        .where(d.send_id == send_id, d.status == DeliveryStatus.IN_FLIGHT,
               sa.or_(d.claimed_by.is_(None), d.claimed_by.not_in(live)))
        .values(status=DeliveryStatus.UNKNOWN, claimed_by=None, updated_at=stamp,
                error_code="interrupted",
                error="the sending process stopped while this batch was with the provider")
    )


def _drop_lock(sender: RegisteredSender) -> None:
    sender.stopped.set()
    lock, sender.lock = sender.lock, None
    if lock is None:
        return
    with contextlib.suppress(Exception):
        if isinstance(lock, sa.Connection):
            # Closed for real, not handed back to the pool: the session ends, and with it
            # the advisory lock.
            lock.invalidate()
        lock.close()  # for a file, closing it releases the flock
