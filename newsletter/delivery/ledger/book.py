"""Where the send loop takes its batches and records their outcomes: the ledger of one send,
through the eyes of one sender.

The loop (``newsletter.delivery.loop``) needs five things of it: the work already done, the
next batch, recording a batch, how long to wait when nothing is claimable, and whether a
failed call is worth repeating. ``LedgerBook`` answers from the database; the test send has
an in-memory one. Every method is blocking (the loop runs them in a thread).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import sqlalchemy as sa

from ...clock import utc_now
from . import claiming, queries, recording, senders, sends
from .claiming import Claim
from .recording import Outcome

IDLE_POLL = 1.0  # seconds between looks for work while other senders hold the rest
MAX_IDLE = 5.0


class Book(Protocol):
    total: int

    def done_before(self) -> int: ...

    def claim(self) -> Claim | None: ...

    def record(self, claim: Claim, outcomes: Sequence[Outcome]) -> Counter:
        """Store the outcomes (``outcomes[i]`` is for ``claim.recipients[i]``); return the
        final states reached."""
        ...

    def wait_hint(self) -> float | None:
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
    canary_only: bool = False  # set by the gate while the canary slice is being sent

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

    def claim(self) -> Claim | None:
        if self.idempotent:
            batch = claiming.claim_unknown(self.engine, self.send.id, self.worker_id,
                                           max_attempts=self.max_attempts, window=self.window)
            if batch is not None:
                return batch
        return claiming.claim(self.engine, self.send.id, self.worker_id, self.batch_size,
                              keep_members=self.idempotent, canary_only=self.canary_only)

    def record(self, claim: Claim, outcomes: Sequence[Outcome]) -> Counter:
        return recording.record(self.engine, self.send.id, self.worker_id, claim, outcomes,
                                max_attempts=self.max_attempts, retry_delay=self.retry_delay,
                                repeats=self.repeats)

    def wait_hint(self) -> float | None:
        senders.recover(self.engine, self.send.id)
        if not queries.open_rows(self.engine, self.send.id, self.repeats):
            return None
        due = queries.next_due(self.engine, self.send.id, self.repeats,
                               canary_only=self.canary_only)
        if due is None:  # in flight with other senders
            return IDLE_POLL
        return max(0.0, min((due - utc_now()).total_seconds(), MAX_IDLE))

    def is_transient(self, exc: BaseException) -> bool:
        return transient_database_error(exc)

    def conclude(self, aborted: str | None, stopped: bool) -> tuple[sends.SendRecord,
                                                                    dict[str, int], bool]:
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
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return True
        text = str(exc).lower()
        if any(fragment in text for fragment in _TRANSIENT):
            return True
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "orig", None)
    return False
