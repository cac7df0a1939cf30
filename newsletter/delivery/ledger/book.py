"""Where the send loop takes its batches and records their outcomes: the ledger of one send,
through the eyes of one sender.

The loop (``newsletter.delivery.loop``) needs six things of it: the work already done, the
next batch (of the canary slice only, when the gate says so), recording a batch, the rows of
senders that died handed over, how long to wait when nothing is claimable, and whether a
failed call is worth repeating. ``LedgerBook`` answers from the database; the test send has
an in-memory one. ``LedgerBook`` also gives the gate its figures and keeps its verdicts
(``gate.GateLedger``). Every method is blocking (the loop runs them in a thread).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa

from ...clock import utc_now
from ...providers.base import Outcome
from ..states import DeliveryStatus
from . import claiming, figures, queries, recording, senders, sends
from .claiming import Claim
from .figures import GateFigures, SentTally

IDLE_POLL = 1.0  # seconds between looks for work while other senders hold the rest
MAX_IDLE = 5.0


class Book(Protocol):
    @property
    def total(self) -> int: ...

    def done_before(self) -> int: ...

    def claim(self, *, canary_only: bool = False) -> Claim | None: ...

    def record(self, claim: Claim, outcomes: Sequence[Outcome]) -> Counter[DeliveryStatus]:
        """Store the outcomes (``outcomes[i]`` is for ``claim.recipients[i]``); return the
        final states reached."""
        ...

    def recover(self) -> None:
        """Hand over the rows that senders which died meanwhile left in flight."""
        ...

    def wait_hint(self, *, canary_only: bool = False) -> float | None:
        """None when no work is left; otherwise seconds until a claim may find some."""
        ...

    def is_transient(self, exc: BaseException) -> bool: ...


@dataclass
class LedgerBook:
    engine: sa.Engine
    send: sends.SendRecord
    worker_id: str
    batch_size: int
    max_attempts: int
    retry_delay: float
    idempotent: bool
    window: timedelta | None = None
    tally: SentTally = field(init=False)  # the brake's sent figure, as this sender counted it

    def __post_init__(self) -> None:
        self.tally = SentTally(self.batch_size)

    @property
    def total(self) -> int:
        return self.send.total

    @property
    def repeats(self) -> queries.Repeats | None:
        """Unknown rows are repeated (under their key) only with an idempotent provider."""
        return queries.Repeats(self.max_attempts, self.window) if self.idempotent else None

    def done_before(self) -> int:
        open_now = queries.open_rows(self.engine, self.send.id, self.repeats)
        return self.total - open_now

    def claim(self, *, canary_only: bool = False) -> Claim | None:
        batch = None
        if self.idempotent:
            batch = claiming.claim_unknown(self.engine, self.send.id, self.worker_id,
                                           max_attempts=self.max_attempts, window=self.window)
        if batch is None:
            batch = claiming.claim(self.engine, self.send.id, self.worker_id, self.batch_size,
                                   keep_members=self.idempotent, canary_only=canary_only)
        if batch is not None:
            self.tally.count_claim(len(batch.recipients))
        return batch

    def record(self, claim: Claim, outcomes: Sequence[Outcome]) -> Counter[DeliveryStatus]:
        return recording.record(self.engine, self.send.id, self.worker_id, claim, outcomes,
                                max_attempts=self.max_attempts, retry_delay=self.retry_delay,
                                repeats=self.repeats)

    def recover(self) -> None:
        senders.recover(self.engine, self.send.id)

    def wait_hint(self, *, canary_only: bool = False) -> float | None:
        if not queries.open_rows(self.engine, self.send.id, self.repeats):
            return None
        due = queries.next_due(self.engine, self.send.id, self.repeats,
                               canary_only=canary_only)
        if due is None:  # in flight with other senders
            return IDLE_POLL
        return max(0.0, min((due - utc_now()).total_seconds(), MAX_IDLE))

    def is_transient(self, exc: BaseException) -> bool:
        return transient_database_error(exc)

    # -- the gate's ----------------------------------------------------------------------

    def gate_figures(self, *, brake: bool, fresh: bool = False
                     ) -> tuple[sends.SendRecord, GateFigures]:
        """The send's row as it is now and the figures the gate judges it by: the brake's
        (``brake``; ``fresh``: the sent rows counted again whatever the tally says) and the
        canary slice's rows still open, while it is being sent."""
        with self.engine.connect() as conn:
            send = sends.read_send(conn, self.send.id)
            found = figures.read(conn, self.send.id, brake_since=send.brake_since, brake=brake,
                                 canary_open=bool(send.canary_size)
                                 and send.canary_until is None,
                                 tally=self.tally, fresh=fresh)
        return send, found

    def pause(self, reason: str) -> None:
        sends.pause(self.engine, self.send.id, reason)

    def start_wait(self, until: datetime) -> datetime:
        return sends.start_wait(self.engine, self.send.id, until)

    def conclude(self, aborted: str | None, stopped: bool
                 ) -> tuple[sends.SendRecord, dict[DeliveryStatus, int], bool]:
        """Mark the send done or aborted. Returns (send, counts, finished): an abort with
        nothing left to do finishes the send instead."""
        left = queries.open_rows(self.engine, self.send.id, self.repeats)
        finished = not left and (aborted is not None or not stopped)
        if finished:
            sends.finish(self.engine, self.send.id)
        elif aborted is not None:
            sends.finish(self.engine, self.send.id, aborted=aborted)
        counts = queries.counts(self.engine, self.send.id)
        return sends.get_send(self.engine, self.send.id), counts, finished


# Errors that say "not now" rather than "never": a lock held too long, a connection lost, a
# transaction chosen as a deadlock victim. The text, because store.db turns SQLite's into a
# one-line DatabaseError and drivers differ.
_TRANSIENT = ("database is locked", "is locked by another process", "database is busy",
              "deadlock detected", "could not serialize", "server closed the connection",
              "connection refused", "terminating connection", "connection is closed",
              "could not connect", "connection timed out", "lock timeout")


def transient_database_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return True
        text = str(current).lower()
        if any(fragment in text for fragment in _TRANSIENT):
            return True
        current = current.__cause__ or current.__context__ or getattr(current, "orig", None)
    return False
