"""The send loop: claim a batch -> send it -> record the outcome, ``concurrency`` at a time.

Memory is bounded by concurrency x batch size: batches are claimed only when a slot is free.
Database work runs in threads so that it never stalls the requests in flight.

It stops claiming, lets the batches in flight finish and records them, then returns, when:
- it is told to stop (Ctrl-C, SIGTERM): the send stays resumable;
- the provider reports a fatal error (bad credentials, account paused): the send is marked
  aborted with the reason, every row in a true state;
- too many recipients fail (``max_error_rate`` once at least ``ERROR_RATE_MIN`` outcomes are
  in): aborted likewise, since something is probably wrong with the list or the content.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from ..clock import utc_now
from ..config import Config
from ..providers.base import (
    BatchError,
    FatalTransportError,
    Outgoing,
    Transport,
    not_sent,
    results_for,
)
from . import ledger
from .ratelimit import RateLimiter

ERROR_RATE_MIN = 200
IDLE_POLL = 1.0  # seconds between looks for work while other senders hold the rest


@dataclass
class Progress:
    """Counts for this run, updated as batches are recorded."""

    total: int
    done_before: int
    counts: Counter = field(default_factory=Counter)
    started: datetime = field(default_factory=utc_now)

    @property
    def finished(self) -> int:
        return self.done_before + sum(self.counts[s] for s in ("sent", "failed", "skipped",
                                                                "unknown"))


@dataclass(frozen=True)
class StopReason:
    """Why a run ended before the send was done.

    ``interrupted`` (a signal) and ``shutdown`` (the worker stopping) leave the send resumable;
    ``aborted`` (a fatal provider error, too many failures) marks it aborted with ``detail``.
    """

    kind: str       # interrupted | shutdown | aborted
    detail: str

    def __str__(self) -> str:
        if self.kind == "aborted":
            return f"aborted: {self.detail}"
        return self.detail


SHUTDOWN = StopReason("shutdown", "stopped: the worker is shutting down")


@dataclass
class RunResult:
    send: ledger.SendRecord
    counts: dict[str, int]          # the whole send, from the ledger, after this run
    this_run: Counter
    stopped: StopReason | None = None

    @property
    def aborted(self) -> bool:
        return self.stopped is not None and self.stopped.kind == "aborted"


class Delivery:
    def __init__(self, config: Config, engine: sa.Engine, transport: Transport,
                 outgoing: Outgoing, send: ledger.SendRecord, *,
                 on_progress: Callable[[Progress], None] | None = None,
                 stop_event: threading.Event | None = None):
        self.config = config
        self.engine = engine
        self.transport = transport
        self.outgoing = outgoing
        self.send = send
        self.batch_size = min(config.batch_size, transport.max_batch)
        self.limiter = RateLimiter(config.rate_limit)
        self.on_progress = on_progress or (lambda p: None)
        self.stop_reason: StopReason | None = None
        self.worker_id = ""
        self.progress: Progress | None = None
        # Another thread (the scheduled worker's shutdown) may ask the send to stop.
        self.stop_event = stop_event

    # -- public ---------------------------------------------------------------------------

    def stop(self, reason: StopReason = StopReason("interrupted", "interrupted")) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    @property
    def aborted(self) -> bool:
        return self.stop_reason is not None and self.stop_reason.kind == "aborted"

    async def run(self) -> RunResult:
        self.worker_id = await asyncio.to_thread(ledger.register_worker, self.engine,
                                                 self.send.id)
        counts = await asyncio.to_thread(ledger.counts, self.engine, self.send.id)
        done_before = sum(n for s, n in counts.items() if s not in ledger.OPEN_STATES
                          and not (s == "unknown" and self.transport.idempotent))
        self.progress = Progress(total=self.send.total, done_before=done_before)
        helpers = [asyncio.create_task(self._heartbeat())]
        if self.stop_event is not None:
            helpers.append(asyncio.create_task(self._watch_stop_event(self.stop_event)))
        if self.stop_event is not None and self.stop_event.is_set():
            self.stop(SHUTDOWN)
        try:
            with self._signals():
                await self._loop()
        finally:
            for task in helpers:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.to_thread(ledger.unregister_worker, self.engine, self.worker_id)
            await self.transport.aclose()
        return await asyncio.to_thread(self._conclude)

    @property
    def _repeat_below(self) -> int | None:
        """Unknown rows are repeated (under their key) only with an idempotent provider."""
        return self.config.max_attempts if self.transport.idempotent else None

    # -- the loop ---------------------------------------------------------------------------

    async def _loop(self) -> None:
        slots = asyncio.Semaphore(self.config.concurrency)
        tasks: set[asyncio.Task] = set()
        while self.stop_reason is None:
            await slots.acquire()
            if self.stop_reason is not None:
                slots.release()
                break
            batch = await asyncio.to_thread(self._claim)
            if batch is None:
                slots.release()
                if tasks:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                if not await self._wait_for_work():
                    break
                continue
            task = asyncio.create_task(self._send(batch))
            tasks.add(task)
            task.add_done_callback(lambda t: (tasks.discard(t), slots.release()))
        if tasks:
            await asyncio.gather(*tasks)

    def _claim(self) -> ledger.Claim | None:
        while True:
            if self.transport.idempotent:
                batch = ledger.claim_unknown(self.engine, self.send.id, self.worker_id,
                                             max_attempts=self.config.max_attempts)
            else:
                batch = None
            if batch is None:
                batch = ledger.claim(self.engine, self.send.id, self.worker_id, self.batch_size)
            if batch is None:
                return None
            if batch.skipped:
                self._count(Counter(skipped=batch.skipped))
            if batch.recipients:
                return batch

    async def _wait_for_work(self) -> bool:
        """Nothing claimable now: wait for a retry to fall due, or for other senders."""
        below = self._repeat_below
        open_now = await asyncio.to_thread(ledger.open_rows, self.engine, self.send.id,
                                           repeat_unknown_below=below)
        if not open_now:
            return False
        await asyncio.to_thread(ledger.recover, self.engine, self.send.id)
        due = await asyncio.to_thread(ledger.next_due, self.engine, self.send.id,
                                      repeat_unknown_below=below)
        wait = IDLE_POLL
        if due is not None:
            wait = max(0.05, min((due - utc_now()).total_seconds(), 5.0))
        await asyncio.sleep(wait)
        return True

    async def _send(self, batch: ledger.Claim) -> None:
        await self.limiter.acquire(len(batch.recipients))
        try:
            results = await self.transport.send_batch(self.outgoing, batch.recipients,
                                                      batch_key=batch.batch_key)
        except FatalTransportError as exc:
            self._abort(str(exc))
            results = not_sent(batch.recipients, exc)
        except BatchError as exc:
            results = results_for(batch.recipients, exc)
        fatal = next((r for r in results if r.fatal), None)
        if fatal is not None:
            self._abort(f"{self.transport.name}: {fatal.reason}")
        outcomes = [ledger.Outcome(r.recipient_id, str(r.status), r.message_id, r.code,
                                   r.reason, r.bad_address, r.retry_after) for r in results]
        await asyncio.to_thread(
            ledger.record, self.engine, self.send.id, self.worker_id, outcomes,
            max_attempts=self.config.max_attempts, retry_delay=self.config.retry_delay)
        self._count(Counter(str(r.status) for r in results))
        self._check_error_rate()

    def _count(self, counter: Counter) -> None:
        assert self.progress is not None
        self.progress.counts.update(counter)
        self.on_progress(self.progress)

    def _check_error_rate(self) -> None:
        assert self.progress is not None
        c = self.progress.counts
        judged = c["sent"] + c["failed"]
        limit = self.config.max_error_rate
        if limit and judged >= ERROR_RATE_MIN and c["failed"] / judged > limit:
            self._abort(f"{c['failed']} of {judged} recipients failed, more than "
                        f"max_error_rate {limit:.0%}; check the list and the provider's "
                        "errors (newsletter status)")

    def _abort(self, reason: str) -> None:
        if not self.aborted:
            self.stop_reason = StopReason("aborted", reason)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(ledger.HEARTBEAT_EVERY)
            await asyncio.to_thread(ledger.heartbeat, self.engine, self.worker_id)

    async def _watch_stop_event(self, event: threading.Event) -> None:
        while not event.is_set():
            await asyncio.sleep(0.2)
        self.stop(SHUTDOWN)

    @contextlib.contextmanager
    def _signals(self):
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stop,
                                        StopReason("interrupted", f"interrupted by {sig.name}"))
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests), or a platform without it
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _conclude(self) -> RunResult:
        send_id = self.send.id
        if self.aborted:
            ledger.finish(self.engine, send_id, aborted=self.stop_reason.detail)
        elif self.stop_reason is None and not ledger.open_rows(
                self.engine, send_id, repeat_unknown_below=self._repeat_below):
            ledger.finish(self.engine, send_id)
        assert self.progress is not None
        return RunResult(
            send=ledger.find_send(self.engine, self.send.week) or self.send,
            counts=ledger.counts(self.engine, send_id),
            this_run=self.progress.counts,
            stopped=self.stop_reason,
        )
