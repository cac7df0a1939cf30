"""Engines for SQLite and PostgreSQL, and schema migrations applied on first use.

``connect(database_url)`` is the way in: it makes (and caches) the engine, brings the schema up
to date and returns the engine. Checking the schema costs one ``SELECT`` on ``alembic_version``;
Alembic itself is imported only when a migration has to run, which keeps the CLI's cold start
short.

Adding a migration: drop a file into ``newsletter/store/migrations/versions/`` (copy the newest one)
with a new ``revision`` (at most 32 characters), ``down_revision`` set to the previous head, and
its own DDL; then update ``newsletter/store/tables.py`` to match. Nothing else needs registering.

On SQLite, transactions are real transactions (DDL included): the driver's own implicit
transaction handling is switched off and SQLAlchemy emits ``BEGIN`` itself. A writer that reads
before it writes should use :func:`begin_write`, which takes the write lock up front
(``BEGIN IMMEDIATE``) instead of failing to upgrade a read lock under contention.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event

from ..errors import NewsletterError

log = logging.getLogger("newsletter.store")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Arbitrary constant: the key of the PostgreSQL advisory lock that serializes migrations when
# several processes start on a fresh database at once.
_PG_MIGRATION_LOCK = 7_246_001
_PG_LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout (or NOWAIT) running out

# A process normally uses one database; the bound keeps idle pooled connections in check when
# it uses many (the test suite makes a database per test).
MAX_CACHED_ENGINES = 4

_engines: OrderedDict[str, sa.Engine] = OrderedDict()
_migrated: set[str] = set()
_lock = threading.RLock()


class DatabaseError(NewsletterError):
    """The database cannot be reached, or its schema is not one this version understands."""


class DatabaseBusy(DatabaseError):
    """Another transaction held a lock this one needed for longer than it would wait."""


def normalize_url(url: str) -> str:
    """Turn the URLs people write into the ones SQLAlchemy needs (psycopg 3 for PostgreSQL)."""
    url = url.strip()
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# Query-string keys that carry a secret: libpq's password and sslpassword, in any case (the key
# is matched after percent-decoding, so ``pass%77ord`` is one too).
_SECRET_QUERY_KEY = re.compile(r"pass|pwd|secret", re.IGNORECASE)
_HIDDEN = "***"


def safe_url(url: str) -> str:
    """The URL with every password hidden (``user:pw@`` and ``?password=``), fit for messages.

    Every message, log line and command that shows a database URL goes through here."""
    try:
        parsed = sa.make_url(normalize_url(url))
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        return "(unparseable database_url)"
    hidden = {key: _HIDDEN for key in parsed.query if _SECRET_QUERY_KEY.search(key)}
    text = parsed.update_query_dict(hidden).render_as_string(hide_password=True)
    # The query's mask comes out percent-encoded; show it as the user:***@ one reads.
    return text.replace(f"={quote(_HIDDEN)}", f"={_HIDDEN}")


def connect(database_url: str) -> sa.Engine:
    """The engine for ``database_url``, its schema migrated to the newest revision."""
    url = normalize_url(database_url)
    engine = _engine(url)
    if url not in _migrated:
        with _lock:
            if url not in _migrated:
                _ensure_schema(engine)
                _migrated.add(url)
    return engine


@contextmanager
def begin_write(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that will write: on SQLite it holds the write lock from the start."""
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        yield conn


def quick_writes(engine: sa.Engine, seconds: float) -> sa.Engine:
    """``engine`` (sharing its pool) whose write transactions (``begin_write``) wait at most
    ``seconds`` for another transaction's lock, then raise DatabaseBusy: for a caller that
    can answer "try again" (the web's one-click unsubscribe) instead of keeping its client
    waiting."""
    return engine.execution_options(lock_wait=seconds)


def upgrade_database(database_url: str) -> tuple[str | None, str | None]:
    """Apply every pending migration; return the revisions before and after."""
    url = normalize_url(database_url)
    engine = _engine(url)
    before = current_revision(engine)
    if before != head_revision():
        _upgrade(engine)
    after = current_revision(engine)
    _migrated.add(url)
    return before, after


def current_revision(engine: sa.Engine) -> str | None:
    """The revision recorded in ``alembic_version``, or None for a database never migrated."""
    try:
        conn = engine.connect()
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(
            f"cannot connect to {safe_url(str(engine.url))}: {_first_line(exc)}"
        ) from None
    with conn:
        try:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            # No alembic_version table yet: a new, empty database.
            conn.rollback()
            return None


def head_revision() -> str | None:
    """The newest migration, found by reading the version files (without importing Alembic)."""
    revisions, down = _scan_versions()
    heads = sorted(set(revisions) - down)
    # Several heads (a merge is missing) is Alembic's to report; "head" then fails loudly.
    return heads[0] if len(heads) == 1 else None


_REVISION_RE = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN_RE = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(?:['\"]([^'\"]+)['\"]|None)", re.M)


def _scan_versions() -> tuple[list[str], set[str]]:
    revisions: list[str] = []
    down: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        rev = _REVISION_RE.search(text)
        if rev is None:
            continue
        revisions.append(rev.group(1))
        prev = _DOWN_RE.search(text)
        if prev is not None and prev.group(1):
            down.add(prev.group(1))
    return revisions, down


def _ensure_schema(engine: sa.Engine) -> None:
    current = current_revision(engine)
    head = head_revision()
    if current is not None and current == head:
        return
    known, _ = _scan_versions()
    if current is not None and current not in known:
        raise DatabaseError(
            f"the database {safe_url(str(engine.url))} is at schema revision {current!r}, "
            "which this version of newsletter does not know; upgrade newsletter"
        )
    _upgrade(engine)


def _upgrade(engine: sa.Engine) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    try:
        # One transaction for the whole upgrade, holding a lock so that a second process
        # starting at the same moment waits, then finds the work done.
        with begin_write(engine) as conn, _quiet_alembic():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(
            f"cannot migrate {safe_url(str(engine.url))}: {_first_line(exc)}"
        ) from None
    log.debug("database %s migrated to %s", safe_url(str(engine.url)), head_revision())


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic's step-by-step INFO lines only when debug logging is on (``--verbose``): on a
    new database's first command they are nine lines of noise."""
    alembic_log = logging.getLogger("alembic")
    before = alembic_log.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_log.setLevel(before)


def _engine(url: str) -> sa.Engine:
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create_engine(url)
            while len(_engines) > MAX_CACHED_ENGINES:
                _forget(next(iter(_engines)))
        else:
            _engines.move_to_end(url)
        return engine


def dispose_engines() -> None:
    """Close every cached engine's pooled connections and forget them (tests, forks)."""
    with _lock:
        for url in list(_engines):
            _forget(url)


def _forget(url: str) -> None:
    # dispose() only closes idle pooled connections; anyone still holding the engine can go on
    # using it (it opens new ones).
    _engines.pop(url).dispose()
    _migrated.discard(url)


def _create_engine(url: str) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise DatabaseError(
            "database_url is not a URL; use sqlite:///path/to/file.db or postgresql://..."
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        return _postgres_engine(parsed)
    raise DatabaseError(
        f"database_url must be sqlite:///... or postgresql://..., got {safe_url(url)}"
    )


def _postgres_engine(url: sa.URL) -> sa.Engine:
    # No server-side prepared statements: psycopg prepares a query after 5 runs, and PG may
    # then keep a generic plan made when a table was empty (a sequential scan), which turned
    # a 100k-row re-import from seconds into minutes. Planning each query is cheap.
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"prepare_threshold": None})

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        wait = conn.get_execution_options().get("lock_wait")
        if wait is not None:  # quick_writes: LOCAL, so it ends with the transaction
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(wait * 1000)}")

    @event.listens_for(engine, "handle_error")
    def _on_error(context) -> None:
        if getattr(context.original_exception, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE:
            raise DatabaseBusy(f"the database is busy: {_first_line(context.original_exception)}")

    return engine


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create the folder {folder} for the database: "
                                f"{exc.strerror}; create it, or set database_url") from None
        _create_private(Path(database))
    # The driver's timeout is the same busy timeout, in force from the first statement
    # (SQLAlchemy's own first-connect queries run before the "connect" event below).
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Hand transaction control to SQLAlchemy (see "begin" below): the sqlite3 module would
        # otherwise commit implicitly before DDL and never BEGIN before a SELECT.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        # Wait for another process's lock instead of failing at once. First: switching to WAL
        # below needs a lock too, and another process may be creating the database right now.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # WAL: readers never block the writer nor the writer the readers.
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives a power cut too, not just a crash. The delivery ledger's
        # "sent" rows must never be lost, or a resumed send would mail those people twice.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        options = conn.get_execution_options()
        begin = f"BEGIN {options.get('sqlite_begin', '')}".strip()
        wait = options.get("lock_wait")
        if wait is None:
            conn.exec_driver_sql(begin)
            return
        # quick_writes: a shorter wait for this BEGIN only (BEGIN IMMEDIATE is where a writer
        # waits for the lock); the pooled connection keeps the usual timeout for its next use.
        raw = conn.connection.driver_connection
        assert raw is not None  # a connection in use has its driver's
        raw.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
        try:
            conn.exec_driver_sql(begin)
        finally:
            raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")

    @event.listens_for(engine, "handle_error")
    def _on_error(context) -> None:
        wait = context.connection.get_execution_options().get("lock_wait") \
            if context.connection is not None else None
        problem = sqlite_problem(context.original_exception, database, wait)
        if problem is not None:
            # The transaction is rolled back as the error leaves it: nothing half-written.
            busy = "database is locked" in str(context.original_exception).lower()
            raise (DatabaseBusy if busy else DatabaseError)(problem)

    return engine


def _create_private(path: Path) -> None:
    """Create the database file for its owner's eyes only (0600), unless it exists: it holds
    every subscriber's address. SQLite gives the -wal and -shm files the main file's mode; an
    existing file keeps the mode someone chose for it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        # It exists, or cannot be made here: SQLite's own error on connecting explains the
        # latter in one line (sqlite_problem).
        return
    os.close(fd)


# What SQLite says -> what to do about it. Each is a state of the file or the machine, not a
# bug: one line naming the file instead of a traceback.
_SQLITE_PROBLEMS = (
    ("readonly database", "is read-only: make the file and its folder writable for this user, "
                          "or point database_url at a writable place"),
    ("database is locked", "is locked by another process (waited {seconds:g} s); let it "
                           "finish, e.g. a send in progress, then run this again"),
    ("disk is full", "cannot be written: the disk is full; free some space and run this again "
                     "(nothing was changed)"),
    ("disk i/o error", "cannot be written: a disk I/O error (a full or failing disk); free some "
                       "space or check the disk, then run this again (nothing was changed)"),
    ("unable to open database file", "cannot be opened: check that its folder exists and this "
                                     "user may write there"),
)


def sqlite_problem(exc: BaseException, database: str,
                   waited: float | None = None) -> str | None:
    """The one-line explanation of a SQLite error about the file or the disk, else None."""
    text = str(exc).lower()
    for fragment, advice in _SQLITE_PROBLEMS:
        if fragment in text:
            advice = advice.format(seconds=SQLITE_BUSY_TIMEOUT_MS / 1000 if waited is None
                                   else waited)
            return f"the database {database or '(in memory)'} {advice}"
    return None


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__
