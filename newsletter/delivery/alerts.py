"""Alerts: one line to the operator's chat (``alert_webhook_url``) when a send starts (its
first run, not a resume), finishes, aborts, is paused by the brake, stalls, or is cancelled.

Queueing is one small INSERT into the ``alerts`` outbox, in its own transaction right after
the change it reports: the send's own transactions are left alone, so an alert can neither
undo nor hold up a change of the ledger. ``alert_outbox.drain_alerts`` posts the rows, at
least once. A failure to queue is one warning line and the send goes on: an alert is worth
less than the send. (A crash in the instant between the change and the INSERT loses that one
alert; a queued one is never lost.)

Each thing is said once: (send, kind, detail) is unique, so a resumed send does not say
"started" again; ``detail`` tells apart what may rightly happen again (a stall after the send
moved: its last progress; a pause after ``--resume-paused``: the brake's period; an abort
after a resume: when it aborted).

No address ever: the texts are the send's figures and words of our own; a reason that comes
from elsewhere (an abort's provider error) has anything shaped like an address blanked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from ..clock import utc_now
from ..config import Config
from ..store.db import begin_write
from ..store.tables import alerts, sends
from .ledger import figures
from .ledger.sends import SendRecord
from .stalls import Stall
from .states import DeliveryStatus, SendStatus
from .status import counts_line

log = logging.getLogger("newsletter.alerts")

ADDRESS = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+\.[^\s<>\"'(),;:]+")


class AlertKind(StrEnum):
    STARTED = "started"
    FINISHED = "finished"
    ABORTED = "aborted"
    PAUSED = "paused"
    STALLED = "stalled"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    send_id: int
    week: str
    text: str
    detail: str = ""   # with (send_id, kind): what makes it a new thing to say


# -- queueing ---------------------------------------------------------------------------------


def send_started(config: Config, engine: sa.Engine, send: SendRecord) -> bool:
    """The send was just created (not resumed): to whom it goes."""
    def make(subject: str) -> Alert:
        canary = (f", a canary of {send.canary_size:,} first" if send.canary_size else "")
        forced = f"; sent past the check's errors (--force): {send.forced}" if send.forced \
            else ""
        return Alert(AlertKind.STARTED, send.id, send.week,
                     _text(config, send.week, subject,
                           f"sending started to {send.total:,} recipients{canary}{forced}"))
    return _queue(config, engine, send.id, lambda conn: make(_subject(conn, send.id)))


def send_concluded(config: Config, engine: sa.Engine, send: SendRecord,
                   counts: Mapping[DeliveryStatus, int]) -> bool:
    """After a run: a send that is now done, or aborted, says so with its counts."""
    if send.status == SendStatus.DONE:
        kind, detail = AlertKind.FINISHED, ""
        what = f"the send is done: {send.total:,} recipients, {counts_line(counts)}"
    elif send.status == SendStatus.ABORTED:
        kind, detail = AlertKind.ABORTED, utc_now().isoformat()
        what = (f"the send was aborted: {send.abort_reason or 'no reason given'}; "
                f"{send.total:,} recipients, {counts_line(counts)}. Look into it "
                f"(`newsletter status --week {send.week}`), then `newsletter send --week "
                f"{send.week}` resumes it")
    else:
        return False
    return _queue(config, engine, send.id, lambda conn: Alert(
        kind, send.id, send.week, _text(config, send.week, _subject(conn, send.id), what),
        detail))


def send_paused(config: Config, engine: sa.Engine, send: SendRecord, reason: str) -> bool:
    """The brake paused ``send`` (its row as the gate read it, before the pause) for
    ``reason``; the message has the bounce and complaint rates the brake judged."""
    def make(conn: sa.Connection) -> Alert:
        judged = figures.figures(conn, send.id, send.brake_since)
        what = (f"paused by the brake: {reason.removeprefix('the brake: ')}; "
                f"{judged.line()}. Look into it (`newsletter events --week {send.week}`), "
                f"then `newsletter send --week {send.week} --resume-paused` goes on")
        since = send.brake_since.isoformat() if send.brake_since is not None else ""
        return Alert(AlertKind.PAUSED, send.id, send.week,
                     _text(config, send.week, _subject(conn, send.id), what), since)
    return _queue(config, engine, send.id, make)


def send_stalled(config: Config, engine: sa.Engine, stall: Stall) -> bool:
    """A stall the worker found: what the send waits for. Again only after it moved."""
    return _queue(config, engine, stall.send_id, lambda conn: Alert(
        AlertKind.STALLED, stall.send_id, stall.week,
        _text(config, stall.week, _subject(conn, stall.send_id),
              f"send {stall.send_id} stalled, {stall.words()}"),
        stall.since.isoformat()))


def send_cancelled(config: Config, engine: sa.Engine, send: SendRecord,
                   counts: Mapping[DeliveryStatus, int]) -> bool:
    """``send --cancel`` ended the send for good (a send is cancelled once: no detail)."""
    what = (f"the send was cancelled: {send.total:,} recipients, {counts_line(counts)}. "
            f"`newsletter send --week {send.week}` starts a new send of the week")
    return _queue(config, engine, send.id, lambda conn: Alert(
        AlertKind.CANCELLED, send.id, send.week,
        _text(config, send.week, _subject(conn, send.id), what)))


def _queue(config: Config, engine: sa.Engine, send_id: int,
           make: Callable[[sa.Connection], Alert], now: datetime | None = None) -> bool:
    """One row in the outbox (``make`` builds it from what it reads); True when queued.
    Never raises: the caller is a send, or the worker's watch."""
    if not config.alert_webhook_url:
        return False
    now = now or utc_now()
    try:
        with begin_write(engine) as conn:
            alert = make(conn)
            conn.execute(alerts.insert().values(
                kind=alert.kind, send_id=alert.send_id, detail=alert.detail[:64],
                week=alert.week, text=alert.text, created_at=now, attempts=0,
                next_attempt_at=now))
    except sa.exc.IntegrityError:
        return False  # said already (a resume, a second sender, a stall told before)
    except Exception as exc:  # an alert must never stop what it reports
        log.warning("alert not queued for send %d: %s", send_id, _one_line(exc))
        return False
    return True


# -- the text ---------------------------------------------------------------------------------


def _subject(conn: sa.Connection, send_id: int) -> str:
    return conn.execute(sa.select(sends.c.subject).where(sends.c.id == send_id)
                        ).scalar_one_or_none() or ""


def _text(config: Config, week: str, subject: str, what: str) -> str:
    """``<name> <week>: <what>`` and the subject on a line of its own, as the edition has it
    (curly quotes, accents). &, < and > are escaped as Slack asks: a subject's ``<!channel>``
    would otherwise ping a whole channel."""
    line = f"{config.name} {week}: {what}\nSubject: {subject}"
    line = ADDRESS.sub("(an address)", line)
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _one_line(exc: BaseException) -> str:
    return re.sub(r"\s+", " ", str(exc)).strip()[:300] or type(exc).__name__
