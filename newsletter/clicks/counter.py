"""Counting fetches of the counted links: judged in memory, then added to the database.

``ClickCounter.fetched`` takes each fetch the web app answered: one judged not a click at once
(``fetches.why_filtered``) is tallied as filtered; a click is held by the ``BurstFilter``
until its window is over, then tallied as a click or, in a burst, as filtered. ``write`` adds
what is tallied to the database (``store.add_counts``) and is the only part that waits on it:
the web app calls it from a background task, never while a reader waits for the redirect.
A failed write keeps its tallies for the next one (they are sums: nothing is lost or doubled
by waiting). ``write(everything=True)`` judges every held click first: the app's shutdown.

The client's address and user agent become ``client_key``, a keyed hash under a key made
afresh by each process and never written, so the key means nothing outside this process; it
is held only while that client's clicks are.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

from ..edition.click_tokens import ClickTarget
from .burst import BurstFilter
from .store import Tally, add_counts


class ClickCounter:
    def __init__(self, engine: sa.Engine, *, clock: Callable[[], float] = time.monotonic,
                 burst: BurstFilter[ClickTarget] | None = None):
        self._engine, self._clock = engine, clock
        self._burst: BurstFilter[ClickTarget] = burst or BurstFilter()
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()  # fetches come from the event loop, writes from a thread
        self._tallies: dict[ClickTarget, Tally] = {}

    def client_key(self, ip: str | None, user_agent: str) -> bytes:
        who = f"{ip or ''}\0{user_agent}".encode("utf-8", "replace")
        return hmac.digest(self._key, who, "sha256")[:16]

    def fetched(self, target: ClickTarget, *, ip: str | None, user_agent: str,
                filtered: bool) -> None:
        """One fetch of ``target``'s link; ``filtered``: known already not to be a click."""
        now = self._clock()
        with self._lock:
            if filtered:
                self._tally(target).filtered += 1
            else:
                self._burst.add(self.client_key(ip, user_agent), target, now)
            self._judge(now)

    def held(self) -> int:
        """Clicks waiting for their burst window to end."""
        with self._lock:
            return len(self._burst)

    def tallied(self) -> dict[ClickTarget, Tally]:
        """What the next ``write`` would add (a copy), after judging what is due."""
        with self._lock:
            self._judge(self._clock())
            return {t: Tally(n.clicks, n.filtered) for t, n in self._tallies.items()}

    def write(self, *, everything: bool = False) -> int:
        """Add what has been judged to the database; the fetches written. Raises the
        database's error, keeping the tallies for the next call."""
        with self._lock:
            self._judge(self._clock(), everything=everything)
            batch, self._tallies = self._tallies, {}
        if not batch:
            return 0
        try:
            add_counts(self._engine, batch)
        except BaseException:
            with self._lock:
                for target, tally in batch.items():
                    self._tally(target).add(tally)
            raise
        return sum(n.clicks + n.filtered for n in batch.values())

    def _judge(self, now: float, *, everything: bool = False) -> None:
        for target, in_burst in self._burst.release(now, everything=everything):
            tally = self._tally(target)
            if in_burst:
                tally.filtered += 1
            else:
                tally.clicks += 1

    def _tally(self, target: ClickTarget) -> Tally:
        tally = self._tallies.get(target)
        if tally is None:
            tally = self._tallies[target] = Tally()
        return tally
