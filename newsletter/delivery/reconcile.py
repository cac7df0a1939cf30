"""Resolving ``unknown`` rows by asking the provider what it accepted, before anyone is mailed
again.

A row is ``unknown`` when its batch's answer was lost (a timeout, a dropped connection, a
sender killed mid-request). Mailing it again could deliver twice; leaving it could deliver
never. A provider that can be asked (``providers.base.Reconciler``: a search API, or the
acceptance events its webhook delivered, ``reconcile_events``) settles it: found, the row is
``sent``; not found once the provider has had ``settle`` to show it, the row is ``pending``
and goes out again, safely; anything else leaves it ``unknown`` with the reason.

``Reconciliation`` is what the send loop holds: it asks about each unknown batch when it is
due (at once, again once the batch has settled, later after a failed search, a few times at
most), and says when it next has something to ask, so the loop waits for that rather than
ending with rows it could still resolve. ``reconcile_week`` (``send --reconcile``) asks once
about every unknown row of a week's send and mails nobody.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..clock import utc_now
from ..providers.base import (
    Finding,
    LookupFailed,
    Reconciler,
    UnknownBatch,
    Verdict,
    settled,
    undecided,
)
from .ledger import reconciling
from .ledger.queries import Repeats

log = logging.getLogger("newsletter.send")

# Asked again this long after a batch settles: clocks differ a little.
SETTLE_MARGIN = timedelta(seconds=1)
# Batches asked about at once.
CONCURRENCY = 4


@dataclass
class Tally:
    """What the provider's answers did to the rows, over a run."""

    accepted: int = 0       # found: now sent
    not_accepted: int = 0   # not found once settled: pending again, sent again
    undecided: int = 0      # rows still unknown after the last ask
    failed_lookups: int = 0

    def add(self, moved: Counter[Verdict]) -> None:
        self.accepted += moved[Verdict.ACCEPTED]
        self.not_accepted += moved[Verdict.NOT_ACCEPTED]

    @property
    def asked(self) -> bool:
        return bool(self.accepted or self.not_accepted or self.undecided or self.failed_lookups)

    def summary(self, provider: str) -> str:
        line = (f"reconciled with {provider}: {self.accepted} found accepted, "
                f"{self.not_accepted} found not accepted (sent again)")
        if self.undecided:
            line += f", {self.undecided} still unknown"
        if self.failed_lookups:
            line += f" ({self.failed_lookups} search(es) failed)"
        return line


@dataclass
class _Asks:
    """When a batch is next asked about."""

    due: datetime


@dataclass
class Reconciliation:
    reconciler: Reconciler
    engine: sa.Engine
    send_id: int
    edition_key: str
    subject: str
    repeats: Repeats | None = None   # an idempotent provider repeats these rows instead
    max_attempts: int | None = None  # a row not accepted after as many fails
    clock: Callable[[], datetime] = utc_now
    tally: Tally = field(default_factory=Tally)
    _asks: dict[str, _Asks] = field(default_factory=dict)
    _done: set[str] = field(default_factory=set)  # nothing more to learn in this run

    def batches(self) -> list[UnknownBatch]:
        """The unknown batches, from the ledger (blocking)."""
        return reconciling.unknown_batches(self.engine, self.send_id,
                                           edition_key=self.edition_key, subject=self.subject,
                                           repeats=self.repeats, now=self.clock())

    async def run_pass(self, db: Db | None = None) -> Counter[Verdict]:
        """Ask about every unknown batch that is due; what the answers moved. ``db`` runs a
        blocking ledger call (the loop's, which retries a busy database)."""
        run = db or _in_thread
        found: list[UnknownBatch] = await run(self.batches)
        self._forget({b.key for b in found})
        now = self.clock()
        due = [b for b in found if b.key not in self._done
               and self._asks.setdefault(b.key, _Asks(now)).due <= now]
        self.tally.undecided = sum(len(b.rows) for b in found)
        moved: Counter[Verdict] = Counter()
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(batch: UnknownBatch) -> None:
            async with slots:
                findings = await self._ask(batch, now)
            if all(f.verdict is not Verdict.UNDECIDED for f in findings):
                self._done.add(batch.key)
            write = functools.partial(reconciling.apply, self.engine, self.send_id, findings,
                                      now=self.clock(), max_attempts=self.max_attempts)
            moved.update(await run(write))

        await asyncio.gather(*(one(b) for b in due))
        self.tally.add(moved)
        self.tally.undecided -= moved[Verdict.ACCEPTED] + moved[Verdict.NOT_ACCEPTED]
        return moved

    async def _ask(self, batch: UnknownBatch, now: datetime) -> list[Finding]:
        asks = self._asks[batch.key]
        try:
            findings = await self.reconciler.reconcile(batch, now=now)
        except LookupFailed as exc:
            # The client has retried what was worth retrying: not again in this run, so a
            # provider whose search is down does not hold the send (``--reconcile`` later).
            self._done.add(batch.key)
            self.tally.failed_lookups += 1
            log.warning("%s: could not ask about batch %s: %s", self.reconciler.name,
                        batch.key, exc)
            return undecided(batch, f"the search failed: {exc}")
        if settled(batch, self.reconciler.settle, now) or all(
                f.verdict is not Verdict.UNDECIDED or f.final for f in findings):
            self._done.add(batch.key)   # its answer is as good as it gets in this run
        else:
            asks.due = batch.sent_at + self.reconciler.settle + SETTLE_MARGIN
        return findings

    def next_ask(self) -> datetime | None:
        """When a batch still unknown is next due to be asked about (None: none is)."""
        waiting = [a.due for key, a in self._asks.items() if key not in self._done]
        return min(waiting) if waiting else None

    def _forget(self, keys: set[str]) -> None:
        """Batches no longer unknown (resolved by others, or sent again) are not waited for."""
        for key in list(self._asks):
            if key not in keys:
                del self._asks[key]


# Runs a blocking ledger call off the event loop: ``db(fn)`` -> fn's result.
Db = Callable[[Callable[[], Any]], Awaitable[Any]]


async def _in_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)
