"""``newsletter send``: the week's edition to every active subscriber, through the ledger.

Resumable: run it again after a crash or an interruption and it carries on where it stopped,
through the provider and endpoint it started with. ``cancel_week`` ends a send for good.

A new send is checked first (``check``: the preflight report) and refused on an error unless
``force``, which the send records. Its canary and brake are the gate's (``gate``): a paused
send goes on only with ``resume_paused``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from ..audience.recipient import Recipient
from ..config import Config
from ..edition.render import render_week
from ..errors import NewsletterError
from ..providers import make_transport, transport_class
from ..providers.base import Outgoing, Transport
from ..store.db import begin_write, connect
from .brake import Thresholds
from .canary import parse_canary
from .gate import Gate
from .gate import resume_paused as unpause
from .ledger import queries, senders, sends
from .ledger.book import LedgerBook
from .ledger.sends import SendError
from .loop import Delivery, RunResult
from .outgoing import prepare
from .progress import progress_reporter
from .states import SendStatus


def check_sender(config: Config) -> None:
    """What every real message needs; a send without them would fail for every recipient."""
    config.require("from_address", "base_url", "postal_address")


def endpoint_of(config: Config) -> str:
    """Where the configured provider sends: its base URL, SMTP server or outbox folder."""
    if config.provider == "eml":
        return str(Path(config.outbox_dir).resolve())
    if config.provider == "smtp":
        return f"smtp://{config.smtp_host}:{config.smtp_port}"
    if config.provider_base_url:
        return config.provider_base_url.rstrip("/")
    if config.provider == "ses":
        return f"https://email.{config.aws_region}.amazonaws.com"
    module = sys.modules[transport_class(config.provider).__module__]
    return getattr(module, "DEFAULT_BASE_URL", "").rstrip("/")


def probe(outgoing: Outgoing) -> None:
    """Build one message for a stand-in recipient: a fault shared by every message (a header
    the configuration makes unencodable) is refused now, before anything is recorded."""
    try:
        outgoing.message(outgoing.personalize(Recipient(0, "probe@example.com", "")))
    except (NewsletterError, ValueError) as exc:
        raise SendError(f"no message of this edition can be built: {exc}") from None


class NotReady(SendError):
    """The preflight check found errors: the edition is not sent (``report`` says why)."""

    def __init__(self, week: str, report):
        self.report = report
        errors = sorted({f.code for f in report.findings if f.severity == "error"})
        super().__init__(f"{week} is not sent: {report.summary} ({', '.join(errors)}); see "
                         f"`newsletter check --week {week}`, fix the edition, or send anyway "
                         "with --force")


def send_edition(config: Config, week: str | None, *, retry_failed: bool = False,
                 retry_unknown: bool = False, interactive: bool | None = None,
                 stop_event: threading.Event | None = None, transport: Transport | None = None,
                 wrap_book: Callable | None = None, check: Callable | None = None,
                 force: bool = False, resume_paused: bool = False, now: Callable | None = None,
                 **transport_options) -> RunResult | None:
    """Send (or resume) the week's send. None when it had already completed.

    ``check(config, week)`` returns the preflight report a new send must pass (``force``:
    sent anyway, and recorded); ``resume_paused`` goes on with a send the brake paused.
    ``transport``, ``wrap_book`` and ``now`` (the canary's clock) are seams for tests (a
    transport of their own, a ledger that fails on cue); ``transport_options`` reach the
    provider's HTTP client.
    """
    check_sender(config)
    rendered = render_week(config, week)
    outgoing = prepare(config, rendered)
    probe(outgoing)
    engine = connect(config.database_url)
    try:
        return _send(config, engine, rendered.week, rendered, outgoing, retry_failed,
                     retry_unknown, interactive, stop_event, transport, wrap_book,
                     transport_options, _Start(check, force, resume_paused, now))
    except sa.exc.DBAPIError as exc:
        raise SendError(f"the database failed: {_first_line(exc)}; nothing is lost, run the "
                        "same command again to resume") from None


@dataclass(frozen=True)
class _Start:
    check: Callable | None
    force: bool
    resume_paused: bool
    now: Callable | None


def _open(config: Config, engine, week: str, rendered, endpoint: str, start: _Start):
    """The week's live send; a new one only past the check (or forced, and recorded)."""
    forced = None
    if start.check is not None and sends.find_live(engine, week) is None:
        report = start.check(config, week)
        if not report.ok:
            if not start.force:
                raise NotReady(week, report)
            errors = sorted({f.code for f in report.findings if f.severity == "error"})
            forced = f"{report.summary} ({', '.join(errors)})"
    send, _ = sends.open_send(engine, week, rendered.content_hash, rendered.subject,
                              config.provider, endpoint, canary=parse_canary(config.canary),
                              forced=forced)
    if send.status == SendStatus.PAUSED:
        if not start.resume_paused:
            raise SendError(f"the send of {week} is paused: {send.abort_reason}. Look into it "
                            f"(`newsletter status --week {week}`, `newsletter events --week "
                            f"{week}`), then `newsletter send --week {week} --resume-paused` "
                            "goes on, or `--cancel` ends it")
        unpause(engine, send.id)
        send = sends.get_send(engine, send.id)
    elif start.resume_paused:
        raise SendError(f"the send of {week} is not paused (it is {send.status}); "
                        "leave out --resume-paused")
    return send


def _send(config, engine, week, rendered, outgoing, retry_failed, retry_unknown, interactive,
          stop_event, transport, wrap_book, transport_options, start) -> RunResult | None:
    endpoint = endpoint_of(config)
    send = _open(config, engine, week, rendered, endpoint, start)
    if send.status == SendStatus.DONE and not _has(engine, send, retry_failed, retry_unknown):
        return None
    sends.check_binding(engine, send, config.provider, endpoint)
    sender = senders.register(engine, send)
    try:
        requeued = 0
        if retry_unknown:
            requeued += sends.requeue(engine, send.id, "unknown")
        if retry_failed:
            requeued += sends.requeue(engine, send.id, "failed")
        if send.status == SendStatus.DONE and not requeued:
            return None
        if transport is None:
            transport = _transport(config, week, transport_options)
        book = LedgerBook(engine, send, sender.worker_id,
                          batch_size=min(config.batch_size, transport.max_batch),
                          max_attempts=config.max_attempts, retry_delay=config.retry_delay,
                          idempotent=transport.idempotent,
                          window=getattr(transport, "idempotency_window", None))
        loop_book = wrap_book(book) if wrap_book else book
        gate = Gate(engine, send.id, book, limits=Thresholds.of(config),
                    wait=config.canary_wait, **({"clock": start.now} if start.now else {}))
        delivery = Delivery(config, transport, outgoing, loop_book, stop_event=stop_event,
                            gate=gate)
        with progress_reporter(week, send.total, interactive=interactive) as report:
            delivery.on_progress = report
            this_run, stopped = asyncio.run(delivery.run())
        aborted = stopped.detail if stopped is not None and stopped.kind == "aborted" else None
        # A pause after the last message changes nothing: the send is done all the same.
        paused = stopped is not None and stopped.kind == "paused"
        record, counts, finished = loop_book.conclude(aborted, stopped is not None
                                                      and not paused)
        note = ""
        if finished and (aborted or paused):
            note, stopped = (aborted or str(stopped)), None
        return RunResult(record, counts, this_run, stopped, note)
    finally:
        senders.release(engine, sender)


def _has(engine, send, retry_failed: bool, retry_unknown: bool) -> bool:
    counts = queries.counts(engine, send.id)
    return bool((retry_failed and counts.get("failed")) or
                (retry_unknown and counts.get("unknown")))


def _transport(config: Config, week: str, options: dict) -> Transport:
    try:
        return make_transport(config, out_dir=Path(config.outbox_dir) / week, **options)
    except (ValueError, TypeError) as exc:  # a setting no client can take (see config)
        raise SendError(f"{config.provider}: cannot set up the provider: {exc}") from None


def cancel_week(config: Config, week: str) -> tuple[sends.SendRecord, dict[str, int]]:
    """End the week's send for good (see ``cancel_send``)."""
    return cancel_send(connect(config.database_url), week)


def cancel_send(engine: sa.Engine, week: str) -> tuple[sends.SendRecord, dict[str, int]]:
    """End the week's send for good: no sender may be at it; its pending rows become
    ``cancelled``. A new send of the week can then be started."""
    send = sends.cancellable(sends.find_send(engine, week), week)
    busy = senders.holder(engine, send)
    if busy:
        raise SendError(f"{busy}; stop it first, then cancel")
    sender = senders.register(engine, send)  # holds off a sender starting right now
    try:
        with begin_write(engine) as conn:
            sends.cancel(conn, send)
    finally:
        senders.release(engine, sender)
    return sends.get_send(engine, send.id), queries.counts(engine, send.id)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__
