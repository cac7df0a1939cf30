"""The check's verdict, remembered: an edition checked once is not checked again unchanged.

A new send runs the preflight check first, in a child process (``isolated.py``), and most of
its time is SpamAssassin loading its rules. The report depends only on what it is made
from, so it is stored (table ``check_verdicts``) under a fingerprint of exactly that:

- the edition's content hash (its subject, HTML and text, which cover the week's files and
  the templates it is made from),
- the configuration (every key, secrets only as set or unset),
- the check's own rules and data (the preflight package's files, the project's copy of the
  client data, which spam tools are installed, the DKIM key the SMTP transport signs with),
- and the day, since the client data's age is one of the findings.

The next ``send`` or resume of the same edition, or the worker's send after an operator's
``newsletter check``, finds it there and starts at once. The child process reports the
content hash it checked, and a verdict is only kept when that is the hash the send is about
to send, so an edition edited while it was being checked is checked again.

Remembering is best effort: a database that cannot store the verdict costs a check next
time, never the send.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path

import sqlalchemy as sa

from ..clock import utc_now
from ..config import Config
from ..store.db import begin_write, connect
from ..store.tables import check_verdicts
from .findings import Finding, Report, Severity

log = logging.getLogger("newsletter.preflight")

# Part of every fingerprint: a change to what a verdict means retires every stored one.
FORMAT = 1
KEEP = timedelta(days=30)
SPAM_TOOLS = ("spamc", "spamassassin")

# (config, week) -> (the report, the content hash the check rendered)
HashedCheck = Callable[[Config, str], tuple[Report, str]]


def check_before_send(config: Config, week: str, content_hash: str, *,
                      check: HashedCheck | None = None, engine: sa.Engine | None = None,
                      today: date | None = None, now: datetime | None = None) -> Report:
    """The verdict on ``week`` whose rendered content is ``content_hash``: remembered, or
    made now by ``check`` (default: in a child process) and remembered."""
    if check is None:
        from .isolated import check_hashed_apart

        check = check_hashed_apart
    engine = engine or connect(config.database_url)
    key = fingerprint(config, content_hash, today=today or date.today())
    report = recall(engine, key)
    if report is not None:
        log.info("%s: the check's verdict from before is reused (nothing it reads changed): "
                 "%s", week, report.summary)
        return report
    report, checked = check(config, week)
    if checked == content_hash:
        remember(engine, key, week, content_hash, report, now=now)
    return report


def remember_check(config: Config, week: str, content_hash: str, report: Report, *,
                   today: date | None = None) -> None:
    """Keep a report made the way a send makes it (``newsletter check`` without --dns or
    --client-data), so the send that follows need not check again."""
    if _no_database_yet(config.database_url):
        return  # a check alone must not create one
    try:
        engine = connect(config.database_url)
    except Exception as exc:  # a check needs no database; remembering is a bonus
        log.debug("check verdict not kept: %s", exc)
        return
    remember(engine, fingerprint(config, content_hash, today=today or date.today()), week,
             content_hash, report)


def _no_database_yet(database_url: str) -> bool:
    try:
        url = sa.make_url(database_url)
    except (sa.exc.ArgumentError, ValueError):
        return True
    if not url.drivername.startswith("sqlite"):
        return False
    return not url.database or url.database == ":memory:" or not Path(url.database).exists()


def fingerprint(config: Config, content_hash: str, *, today: date) -> str:
    """A hash of everything the check's report depends on (see the module's docstring)."""
    digest = hashlib.sha256()
    parts = {
        "format": FORMAT,
        "content": content_hash,
        "config": config.redacted(),
        "rules": _rules_digest(),
        "client_data": _file_digest(config.base_dir / "caniemail.json"),
        "dkim_key": _dkim_digest(config),
        "spam_tools": [shutil.which(tool) or "" for tool in SPAM_TOOLS],
        "day": today.isoformat(),
    }
    digest.update(json.dumps(parts, sort_keys=True, default=str).encode("utf-8"))
    return digest.hexdigest()


def recall(engine: sa.Engine, key: str) -> Report | None:
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.select(check_verdicts.c.report)
                                  .where(check_verdicts.c.fingerprint == key)).scalar()
        return None if stored is None else _from_json(stored)
    except (sa.exc.SQLAlchemyError, ValueError, KeyError, TypeError) as exc:
        log.warning("the check's remembered verdict could not be read (%s); checking again",
                    _one_line(exc))
        return None


def remember(engine: sa.Engine, key: str, week: str, content_hash: str, report: Report, *,
             now: datetime | None = None) -> None:
    now = now or utc_now()
    try:
        with begin_write(engine) as conn:
            conn.execute(check_verdicts.delete().where(
                (check_verdicts.c.fingerprint == key) | (check_verdicts.c.checked_at < now - KEEP)))
            conn.execute(check_verdicts.insert().values(
                fingerprint=key, week=week, content_hash=content_hash, ok=report.ok,
                report=_to_json(report), checked_at=now))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("the check's verdict was not kept (%s); the next send checks again",
                    _one_line(exc))


def _to_json(report: Report) -> str:
    return json.dumps({"title": report.title,
                       "findings": [f.as_dict() for f in report.findings]}, ensure_ascii=False)


def _from_json(text: str) -> Report:
    document = json.loads(text)
    findings = (Finding(Severity(f["severity"]), f["code"], f["message"], f["fix"])
                for f in document["findings"])
    return Report.of(findings, document["title"])


@cache
def _rules_digest() -> str:
    """The preflight package's code and data (the rules and what they read), once a process."""
    digest = hashlib.sha256()
    root = Path(str(resources.files("newsletter.preflight")))
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".pyc"):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _dkim_digest(config: Config) -> str:
    """Which key signs (the key is PEM text or a file's path): a hash, never the key."""
    value = config.dkim_private_key
    if not value:
        return ""
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
    if "-----BEGIN" not in value:
        digest += _file_digest(config.base_dir / value)
    return digest


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
