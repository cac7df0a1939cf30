"""``newsletter send``: the week's edition to every active subscriber, through the ledger.

Resumable: run it again after a crash or an interruption and it carries on where it stopped,
through the provider and endpoint it started with. ``cancel_week`` ends a send for good.

A run is asked for with ``SendOptions``. A new send is checked first (``check``: the
preflight report) and refused on an error unless ``force``, which the send records. Its canary
and brake are the gate's (``gate``): a paused send goes on only with ``resume_paused``.
``SendDeps`` are the parts a send is made of (the transport, the ledger, the clock), each the
real one unless given.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, cast

import sqlalchemy as sa

from ..audience.recipient import Recipient
from ..clock import utc_now
from ..config import Config
from ..edition.render import RenderedEdition, render_week
from ..errors import NewsletterError
from ..logs import about
from ..message.model import Outgoing
from ..message.outgoing import prepare
from ..providers import REGISTRY, make_transport, transport_class
from ..providers.base import Reconciler, Transport
from ..store.db import begin_write, connect
from . import alerts
from .canary import parse_canary
from .gate import GateCheck, Rules
from .ledger import queries, senders, sends
from .ledger.book import LedgerBook
from .ledger.sends import SendError
from .loop import Delivery
from .progress import progress_reporter
from .reconcile import Reconciliation, Tally
from .reconcile_events import DEFAULT_SETTLE, EventLogReconciler
from .run_result import RunResult
from .states import DeliveryStatus, SendStatus, StopKind, StopReason


def check_sender(config: Config) -> None:
    """What every real message needs; a send without them would fail for every recipient."""
    config.require("from_address", "base_url", "postal_address")


def endpoint_of(config: Config) -> str:
    """Where the configured provider sends: its base URL, SMTP server or outbox folder."""
    return REGISTRY[config.provider].endpoint(config)


def probe(outgoing: Outgoing) -> None:
    """Build one message for a stand-in recipient: a fault shared by every message (a header
    the configuration makes unencodable) is refused now, before anything is recorded."""
    try:
        outgoing.message(outgoing.personalize(Recipient(0, "probe@example.com", "")))
    except (NewsletterError, ValueError) as exc:
        raise SendError(f"no message of this edition can be built: {exc}") from None


class CheckFinding(Protocol):
    """What a send reads of one finding of the check (``preflight.Finding``)."""

    @property
    def severity(self) -> str: ...

    @property
    def code(self) -> str: ...


class CheckReport(Protocol):
    """What a send reads of the check's report (``preflight.Report``)."""

    @property
    def ok(self) -> bool: ...

    @property
    def summary(self) -> str: ...

    @property
    def findings(self) -> Sequence[CheckFinding]: ...


def _error_codes(report: CheckReport) -> str:
    """The codes of the report's errors (``preflight.Severity.ERROR``: preflight sits above
    delivery, so its enum is not imported here)."""
    return ", ".join(sorted({f.code for f in report.findings if f.severity == "error"}))


class NotReady(SendError):
    """The preflight check found errors: the edition is not sent (``report`` says why)."""

    def __init__(self, week: str, report: CheckReport) -> None:
        self.report = report
        super().__init__(f"{week} is not sent: {report.summary} ({_error_codes(report)}); see "
                         f"`newsletter check --week {week}`, fix the edition, or send anyway "
                         "with --force")


@dataclass(frozen=True)
class SendOptions:
    """What the operator (``newsletter send``) or the worker asks of a run of a send."""

    retry_failed: bool = False      # failed rows go again (--retry-failed)
    retry_unknown: bool = False     # unknown rows go again, perhaps a second time
    force: bool = False             # a new send goes out past the check's errors, recorded
    resume_paused: bool = False     # a send the brake paused goes on (--resume-paused)
    interactive: bool | None = None  # a progress bar; None: when stderr is a terminal
    # ``check(config, week, content_hash)``: the preflight report a new send must pass (None:
    # no check); given the hash of the content about to go out, it may reuse a verdict.
    check: Callable[[Config, str, str], CheckReport] | None = None


def make_week_transport(config: Config, week: str) -> Transport:
    """The configured provider's transport for the week's send (eml: its own folder)."""
    return make_transport(config, out_dir=Path(config.outbox_dir) / week)


def reconciler_for(config: Config, transport: Transport, engine: sa.Engine,
                   send_id: int) -> Reconciler | None:
    """Who can say what the provider accepted (``providers.info.ProviderInfo.reconciles``):
    the transport (a search API), the event log (acceptance events), or nobody."""
    how = REGISTRY[config.provider].reconciles
    if how == "api" and callable(getattr(transport, "reconcile", None)):
        return cast(Reconciler, transport)
    if how == "events":
        settle = (timedelta(seconds=config.reconcile_settle) if config.reconcile_settle
                  else DEFAULT_SETTLE)
        return EventLogReconciler(config.provider, engine, send_id, settle=settle)
    return None


def _as_is(book: LedgerBook) -> LedgerBook:
    return book


@dataclass(frozen=True)
class SendDeps:
    """What a send is made of besides its configuration and options, each the real one unless
    given: the tests give their own (``tests/sending.py``: a transport, a ledger that fails on
    cue, a clock past the canary's wait)."""

    transport: Callable[[Config, str], Transport] = make_week_transport  # (config, week)
    book: Callable[[LedgerBook], LedgerBook] = _as_is  # the ledger, as the loop sees it
    clock: Callable[[], datetime] = utc_now      # the gate's: the canary's wait


def send_edition(config: Config, week: str | None, options: SendOptions = SendOptions(), *,
                 stop_event: threading.Event | None = None,
                 deps: SendDeps = SendDeps()) -> RunResult | None:
    """Send (or resume) the week's send. None when it had already completed.

    ``stop_event`` set (from another thread: the worker stopping) asks the run to stop; the
    batches in flight are recorded first.
    """
    check_sender(config)
    rendered = render_week(config, week)
    outgoing = prepare(config, rendered)
    probe(outgoing)
    engine = connect(config.database_url)
    try:
        with about(rendered.week):  # every line of the send names its week (newsletter.logs)
            return _send(config, engine, rendered, outgoing, options, stop_event, deps)
    except sa.exc.DBAPIError as exc:
        raise SendError(f"the database failed: {_first_line(exc)}; nothing is lost, run the "
                        "same command again to resume") from None


def _open(config: Config, engine: sa.Engine, rendered: RenderedEdition, endpoint: str,
          options: SendOptions) -> sends.SendRecord:
    """The week's live send; a new one only past the check (or forced, and recorded)."""
    week = rendered.week
    forced = None
    if options.check is not None and sends.find_live(engine, week) is None:
        report = options.check(config, week, rendered.content_hash)
        if not report.ok:
            if not options.force:
                raise NotReady(week, report)
            forced = f"{report.summary} ({_error_codes(report)})"
    provider: type[Transport] = transport_class(config.provider)
    send, created = sends.open_send(engine, week, rendered.content_hash, rendered.subject,
                                    config.provider, endpoint,
                                    canary=parse_canary(config.canary), forced=forced,
                                    idempotent=provider.idempotent)
    if created:  # a resume is not a start: only the run that created the send says it
        alerts.send_started(config, engine, send)
    if send.status == SendStatus.PAUSED:
        if not options.resume_paused:
            raise SendError(f"the send of {week} is paused: {send.abort_reason}. Look into it "
                            f"(`newsletter status --week {week}`, `newsletter events --week "
                            f"{week}`), then `newsletter send --week {week} --resume-paused` "
                            "goes on, or `--cancel` ends it")
        sends.resume_paused(engine, send.id)
        send = sends.get_send(engine, send.id)
    elif options.resume_paused:
        raise SendError(f"the send of {week} is not paused (it is {send.status}); "
                        "leave out --resume-paused")
    return send


def _send(config: Config, engine: sa.Engine, rendered: RenderedEdition, outgoing: Outgoing,
          options: SendOptions, stop_event: threading.Event | None,
          deps: SendDeps) -> RunResult | None:
    week = rendered.week
    endpoint = endpoint_of(config)
    send = _open(config, engine, rendered, endpoint, options)
    if send.status == SendStatus.DONE and not _has(engine, send, options):
        return None
    with about(week, send.id):  # and, once it is open, the send's id
        sends.check_binding(engine, send, config.provider, endpoint)
        sender = senders.register(engine, send)
        try:
            requeued = 0
            if options.retry_unknown:
                requeued += sends.requeue(engine, send.id, DeliveryStatus.UNKNOWN)
            if options.retry_failed:
                requeued += sends.requeue(engine, send.id, DeliveryStatus.FAILED)
            if send.status == SendStatus.DONE and not requeued:
                return None
            transport = _transport(config, week, deps)
            ledger = LedgerBook(engine, send, sender.worker_id,
                                batch_size=min(config.batch_size, transport.max_batch),
                                max_attempts=config.max_attempts, retry_delay=config.retry_delay,
                                idempotent=transport.idempotent,
                                window=getattr(transport, "idempotency_window", None))
            book = deps.book(ledger)
            gate = GateCheck(book, Rules.of(config), deps.clock,
                             on_pause=lambda paused, why: alerts.send_paused(config, engine,
                                                                             paused, why))
            reconciler = reconciler_for(config, transport, engine, send.id)
            reconciliation = None if reconciler is None else Reconciliation(
                reconciler, engine, send.id, outgoing.edition_key, outgoing.subject,
                repeats=ledger.repeats, max_attempts=config.max_attempts)
            delivery = Delivery(config, transport, outgoing, book, stop_event=stop_event,
                                gate=gate, reconciliation=reconciliation)
            with progress_reporter(week, send.total, interactive=options.interactive) as report:
                delivery.on_progress = report
                this_run, stopped = asyncio.run(delivery.run())
            tally = reconciliation.tally if reconciliation is not None else None
            result = _conclude(book, this_run, stopped, tally)
            alerts.send_concluded(config, engine, result.send, result.counts)
            return result
        finally:
            senders.release(engine, sender)


def _conclude(book: LedgerBook, this_run: Counter[DeliveryStatus],
              stopped: StopReason | None, tally: Tally | None = None) -> RunResult:
    """Mark the send done or aborted after the run; what the run came to."""
    aborted = stopped.detail if stopped is not None and stopped.kind is StopKind.ABORTED \
        else None
    # A pause after the last message changes nothing: the send is done all the same.
    paused = stopped is not None and stopped.kind is StopKind.PAUSED
    record, counts, finished = book.conclude(aborted, stopped is not None and not paused)
    note = ""
    if finished and stopped is not None and (aborted or paused):
        note, stopped = (aborted or str(stopped)), None
    return RunResult(record, counts, this_run, stopped, note,
                     tally if tally is not None and tally.asked else None)


def _has(engine: sa.Engine, send: sends.SendRecord, options: SendOptions) -> bool:
    counts = queries.counts(engine, send.id)
    return bool((options.retry_failed and counts.get(DeliveryStatus.FAILED)) or
                (options.retry_unknown and counts.get(DeliveryStatus.UNKNOWN)))


def _transport(config: Config, week: str, deps: SendDeps) -> Transport:
    try:
        return deps.transport(config, week)
    except (ValueError, TypeError) as exc:  # a setting no client can take (see config)
        raise SendError(f"{config.provider}: cannot set up the provider: {exc}") from None


@dataclass(frozen=True)
class ReconcileResult:
    """What ``send --reconcile`` learnt: the send, its counts after, and the provider's
    answers (None: the provider cannot be asked)."""

    send: sends.SendRecord
    counts: dict[DeliveryStatus, int]
    tally: Tally | None


def reconcile_week(config: Config, week: str | None, *,
                   deps: SendDeps = SendDeps()) -> ReconcileResult:
    """Ask the provider about every unknown row of the week's send, once, and mail nobody:
    found rows become sent; rows it has none of (settled) become pending, for the next run."""
    check_sender(config)
    rendered = render_week(config, week)
    outgoing = prepare(config, rendered)
    engine = connect(config.database_url)
    send = sends.find_live(engine, rendered.week)
    if send is None:
        raise SendError(f"{rendered.week} has no send to reconcile")
    sends.check_binding(engine, send, config.provider, endpoint_of(config))
    transport = _transport(config, rendered.week, deps)
    reconciler = reconciler_for(config, transport, engine, send.id)
    tally = None
    if reconciler is not None:
        # Every unknown row, those an idempotent provider would repeat included.
        reconciliation = Reconciliation(reconciler, engine, send.id, outgoing.edition_key,
                                        outgoing.subject, max_attempts=config.max_attempts)

        async def ask() -> None:
            try:
                await reconciliation.run_pass()
            finally:
                await transport.aclose()

        asyncio.run(ask())
        tally = reconciliation.tally
    else:
        asyncio.run(transport.aclose())
    return ReconcileResult(sends.get_send(engine, send.id), queries.counts(engine, send.id),
                           tally)


def cancel_week(config: Config, week: str
                ) -> tuple[sends.SendRecord, dict[DeliveryStatus, int]]:
    """End the week's send for good (see ``cancel_send``), and queue its alert."""
    engine = connect(config.database_url)
    send, counts = cancel_send(engine, week)
    alerts.send_cancelled(config, engine, send, counts)
    return send, counts


def cancel_send(engine: sa.Engine, week: str
                ) -> tuple[sends.SendRecord, dict[DeliveryStatus, int]]:
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
