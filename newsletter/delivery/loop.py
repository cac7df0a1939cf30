"""The send loop: claim a batch -> attempt it -> record the outcome, ``concurrency`` at a time.

It takes its batches from, and records them in, a ``Book`` (the ledger, or the test send's
list). Memory is bounded by concurrency x batch size: batches are claimed only when a slot is
free. Book calls run in threads so that they never stall the requests in flight.

Every batch's outcome is collected: nothing a batch raises is lost, and no row is left in
flight by a run that goes on (``newsletter.delivery.attempt`` turns whatever happened into
outcomes). A database that says "not now" (locked, connection lost) is asked again: a claim
until the send is told to stop, a recording until it succeeds or a second signal gives up, so
the provider's answer is not thrown away.

It stops claiming, lets the batches in flight finish and records them, then returns, when:
- it is told to stop (Ctrl-C, SIGTERM, the worker stopping): the send stays resumable;
- the provider reports a fatal error, or anything unexpected happens: aborted, with the
  reason, every row in a true state;
- too many recipients fail (``max_error_rate`` once at least ``ERROR_RATE_MIN`` outcomes are
  in): aborted likewise, since something is probably wrong with the list or the content;
- the gate (``newsletter.delivery.gate``, asked before each claim) says no: the brake paused
  the send, or its canary slice is out and the wait for what comes back has not ended. What it
  says yes with goes to the claim: while the canary slice is being sent, only its rows.

With a provider that can be asked what it accepted (``newsletter.delivery.reconcile``), the
send's unknown rows are asked about first, and again whenever nothing is claimable; the run
ends only once nothing it could still learn is due, so the rows found not accepted are sent
in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar, TypeVarTuple

from ..clock import utc_now
from ..config import Config
from ..message.model import Outgoing
from ..providers.base import Outcome, OutcomeKind, Transport, Verdict
from .attempt import attempt, one_line
from .gate import GateCheck, Go
from .ledger.book import Book
from .ledger.claiming import Claim
from .ratelimit import RateLimiter
from .reconcile import Reconciliation
from .states import FINAL_STATES, DeliveryStatus, StopKind, StopReason

log = logging.getLogger("newsletter.send")

ERROR_RATE_MIN = 200
MAX_IDLE_LOG = 5.0  # a wait for the provider longer than this is said in the log

T = TypeVar("T")
Args = TypeVarTuple("Args")


@dataclass
class Progress:
    """Counts for this run (rows that reached a final state), updated as batches are
    recorded; ``finished`` never exceeds ``total``."""

    total: int
    done_before: int
    counts: Counter[DeliveryStatus] = field(default_factory=Counter)
    started: datetime = field(default_factory=utc_now)

    @property
    def finished(self) -> int:
        return self.done_before + sum(self.counts[s] for s in FINAL_STATES)

    def resolve(self, accepted: int, reopened: int) -> None:
        """Unknown rows the provider answered for: ``accepted`` are sent now, ``reopened``
        open again. They come out of this run's unknown count first, then out of the rows
        that were done before it."""
        from_run = min(self.counts[DeliveryStatus.UNKNOWN], accepted + reopened)
        self.counts[DeliveryStatus.UNKNOWN] -= from_run
        self.counts[DeliveryStatus.SENT] += accepted
        self.done_before -= accepted + reopened - from_run


SHUTDOWN = StopReason(StopKind.SHUTDOWN, "stopped: the worker is shutting down")
INTERRUPTED = StopReason(StopKind.INTERRUPTED, "interrupted")


class Delivery:
    def __init__(self, config: Config, transport: Transport, outgoing: Outgoing, book: Book, *,
                 on_progress: Callable[[Progress], None] | None = None,
                 stop_event: threading.Event | None = None,
                 gate: GateCheck | None = None,
                 reconciliation: Reconciliation | None = None) -> None:
        self.transport = transport
        self.outgoing = outgoing
        self.book = book
        self.concurrency = max(1, config.concurrency)
        self.max_error_rate = config.max_error_rate
        self.limiter = RateLimiter(config.rate_limit)
        self.on_progress: Callable[[Progress], None] = on_progress or (lambda p: None)
        self.stop_reason: StopReason | None = None
        self.progress: Progress | None = None
        # Another thread (the scheduled worker's shutdown) may ask the send to stop.
        self.stop_event = stop_event
        # Asked before each claim whether a new batch may start, and of which rows (the
        # canary, the brake); None: always, of any (the test send).
        self.gate = gate
        # Asks the provider about unknown rows (None: it cannot be asked).
        self.reconciliation = reconciliation
        self._canary_only = False  # what the gate last said: only the canary slice's rows
        self._give_up = False        # a second signal: stop retrying the database
        self._signals_seen = 0
        self._dead: BaseException | None = None  # not an error: the process is going
        self._wake: asyncio.Event | None = None

    # -- public ---------------------------------------------------------------------------

    def stop(self, reason: StopReason = INTERRUPTED) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if self._wake is not None:
            self._wake.set()

    @property
    def aborted(self) -> bool:
        return self.stop_reason is not None and self.stop_reason.kind is StopKind.ABORTED

    async def run(self) -> tuple[Counter[DeliveryStatus], StopReason | None]:
        """Send until done or stopped; return this run's final counts and why it stopped."""
        self._wake = asyncio.Event()
        done_before = await self._db(self.book.done_before)
        self.progress = Progress(total=self.book.total, done_before=done_before)
        helpers: list[asyncio.Task[None]] = []
        if self.stop_event is not None:
            helpers.append(asyncio.create_task(self._watch_stop_event(self.stop_event)))
        try:
            with self._signals():
                await self._reconcile()
                await self._loop()
        finally:
            for task in helpers:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.transport.aclose()
        return self.progress.counts, self.stop_reason

    # -- the loop ---------------------------------------------------------------------------

    def _stopping(self) -> bool:
        if self.stop_reason is None and self.stop_event is not None and self.stop_event.is_set():
            self.stop(SHUTDOWN)
        return self.stop_reason is not None or self._dead is not None

    async def _loop(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping():
                await slots.acquire()
                if self.gate is not None and not self._stopping():
                    await self._ask_gate(self.gate)
                claim = None if self._stopping() else await self._claim()
                if claim is None:
                    slots.release()
                    if self._stopping():
                        break
                    if tasks:
                        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    elif await self._reconcile():
                        continue
                    elif not await self._wait_for_work():
                        break
                    continue
                task = asyncio.create_task(self._batch(claim))
                tasks.add(task)
                task.add_done_callback(functools.partial(self._collect, tasks, slots))
        finally:
            if tasks:  # every batch in flight finishes and is recorded
                await asyncio.wait(tasks)
        if self._dead is not None:
            raise self._dead

    def _collect(self, tasks: set[asyncio.Task[None]], slots: asyncio.Semaphore,
                 task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        slots.release()
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if not isinstance(exc, Exception):
            self._dead = self._dead or exc
            return
        log.error("a batch could not be recorded: %s: %s; its rows count as unknown on "
                  "the next run", type(exc).__name__, one_line(exc))
        self._abort(f"a batch could not be recorded: {type(exc).__name__}: {one_line(exc)}")

    async def _claim(self) -> Claim | None:
        claim_batch = functools.partial(self.book.claim, canary_only=self._canary_only)
        while True:
            try:
                claim = await self._db(claim_batch)
            except Exception as exc:
                if not self._stopping():
                    self._abort(f"the database failed: {one_line(exc)}")
                return None
            if claim is None:
                return None
            if claim.skipped:
                self._count(Counter({DeliveryStatus.SKIPPED: claim.skipped}))
            if claim.recipients:
                return claim

    async def _ask_gate(self, gate: GateCheck) -> None:
        try:
            verdict = await self._db(gate.verdict)
        except Exception as exc:
            if not self._stopping():
                self._abort(f"the database failed: {one_line(exc)}")
            return
        if isinstance(verdict, Go):
            self._canary_only = verdict.canary_only
        else:
            self.stop(verdict.reason)

    async def _reconcile(self) -> bool:
        """Ask the provider about the unknown rows that are due; True when some of them are
        to be sent again (work to claim)."""
        if self.reconciliation is None or self._stopping():
            return False
        try:
            moved = await self.reconciliation.run_pass(self._db)
        except Exception as exc:
            if not self._stopping():
                self._abort(f"the database failed: {one_line(exc)}")
            return False
        reopened = moved[Verdict.NOT_ACCEPTED]
        if moved[Verdict.ACCEPTED] or reopened:
            assert self.progress is not None
            self.progress.resolve(moved[Verdict.ACCEPTED], reopened)
            self.on_progress(self.progress)
        return reopened > 0

    def _next_ask(self) -> float | None:
        """Seconds until the provider is next to be asked about a row (None: never)."""
        ask = self.reconciliation.next_ask() if self.reconciliation is not None else None
        return None if ask is None else max(0.0, (ask - utc_now()).total_seconds())

    async def _wait_for_work(self) -> bool:
        """Nothing claimable now: wait for a retry to fall due, for other senders, or for the
        provider to have had time to show what it accepted."""
        try:
            await self._db(self.book.recover)
            wait = await self._db(functools.partial(self.book.wait_hint,
                                                    canary_only=self._canary_only))
        except Exception as exc:
            if not self._stopping():
                self._abort(f"the database failed: {one_line(exc)}")
            return False
        ask = self._next_ask()
        if ask is not None and (wait is None or ask < wait):
            if ask > MAX_IDLE_LOG:
                assert self.reconciliation is not None
                log.info("waiting %.0f s for %s to show the messages it accepted, before "
                         "deciding about the unknown recipients", ask,
                         self.reconciliation.reconciler.name)
            wait = ask
        if wait is None:
            return False
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.05))
        return True

    async def _batch(self, claim: Claim) -> None:
        try:
            result = await attempt(self.transport, self.outgoing, claim, self.limiter)
            outcomes, abort = result.outcomes, result.abort
        except Exception as exc:  # before any request: screening itself failed
            abort = f"{type(exc).__name__}: {one_line(exc)}"
            outcomes = [Outcome(r.id, OutcomeKind.UNTRIED, code="error", reason=abort)
                        for r in claim.recipients]
        if abort:
            self._abort(abort)
        final = await self._db(self.book.record, claim, outcomes, essential=True)
        self._count(final)
        self._check_error_rate()

    async def _db(self, fn: Callable[[*Args], T], *args: *Args, essential: bool = False) -> T:
        """``fn(*args)`` in a thread, asked again while the database says "not now": until
        it answers (``essential``: a recording; a second signal gives up) or the send stops."""
        delay, warned = 0.05, False
        while True:
            try:
                return await asyncio.to_thread(fn, *args)
            except Exception as exc:
                giving_up = self._give_up if essential else self._stopping()
                if giving_up or not self.book.is_transient(exc):
                    raise
                if not warned:
                    log.warning("the database is busy (%s); %s again until it answers",
                                one_line(exc), "recording" if essential else "asking")
                    warned = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _count(self, counter: Counter[DeliveryStatus]) -> None:
        assert self.progress is not None
        self.progress.counts.update(counter)
        self.on_progress(self.progress)

    def _check_error_rate(self) -> None:
        assert self.progress is not None
        c = self.progress.counts
        failed = c[DeliveryStatus.FAILED]
        judged = c[DeliveryStatus.SENT] + failed
        limit = self.max_error_rate
        if limit and judged >= ERROR_RATE_MIN and failed / judged > limit:
            self._abort(f"{failed} of {judged} recipients failed, more than "
                        f"max_error_rate {limit:.0%}; check the list and the provider's "
                        "errors (newsletter status)")

    def _abort(self, reason: str) -> None:
        if not self.aborted:
            self.stop_reason = StopReason(StopKind.ABORTED, reason)
        if self._wake is not None:
            self._wake.set()

    async def _watch_stop_event(self, event: threading.Event) -> None:
        while not event.is_set():
            await asyncio.sleep(0.2)
        self.stop(SHUTDOWN)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals_seen += 1
        if self._signals_seen > 1:
            self._give_up = True  # a second signal: stop waiting for the database
        self.stop(StopReason(StopKind.INTERRUPTED, f"interrupted by {sig.name}"))

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests), or a platform without it
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
