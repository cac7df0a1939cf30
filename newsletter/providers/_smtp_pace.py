"""When the next SMTP message may go: ``rate_limit``, and slower after the relay throttles.

One ``Pacer`` is shared by every connection of a send. Each message first takes a slot on a
common timeline (``rate_limit`` a second; none when it is 0), so concurrent connections do not
burst together: a relay that counts messages per second sees an even stream.

A throttling reply to a message (421, or 4xx with an enhanced code 4.7.x; see
``_smtp_wire.is_throttling``) makes every connection pause (1 s, doubling while replies keep
throttling, at most 60 s) and cuts the rate to half of what the relay accepted over the last
few seconds (1 a second if nothing was accepted yet); each accepted message then raises it by
about one message a second per second (additive increase, multiplicative decrease, as TCP
does), never above ``rate_limit``. Replies to messages that were already under way when the
rate was cut count as the same event, so four connections throttled at once halve it once. A
connection refused with a throttling reply only pauses: too many connections is no reason to
send each message slower.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

FIRST_PAUSE = 1.0
MAX_PAUSE = 60.0
MIN_RATE = 0.2      # messages a second: the slowest it goes
FIRST_RATE = 1.0    # the rate after a throttle when nothing was accepted yet to measure
WINDOW = 5.0        # seconds of acceptances that measure the relay's rate


class Pacer:
    def __init__(self, rate: float = 0.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.ceiling = rate      # the configured rate_limit; 0 = none
        self.limit = rate        # the rate in force now; 0 = none
        self.pause = 0.0         # the current pause after throttling; 0 = not throttled
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0         # the next free slot on the shared timeline
        self._resume_at = 0.0    # nobody sends before this
        self._epoch = 0          # bumped at every slow-down
        self._accepted: deque[float] = deque()

    async def resume(self) -> int:
        """Wait out a pause (without taking a slot); returns a ticket for ``throttled``."""
        while (delay := self._resume_at - self._clock()) > 0:
            await self._sleep(delay)  # again if a throttle meanwhile made the pause longer
        return self._epoch

    async def wait(self) -> int:
        """Wait for this message's slot; returns a ticket for ``accepted``/``throttled``."""
        if self.limit <= 0 and self._resume_at == 0.0:
            return self._epoch  # the common case: never throttled, no rate_limit
        await self.resume()
        if self.limit > 0:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + 1 / self.limit
            if start > now:
                await self._sleep(start - now)
        return self._epoch

    def delay(self) -> float:
        """How long ``wait`` would sleep if called now."""
        if self.limit <= 0 and self._resume_at == 0.0:
            return 0.0
        start = max(self._resume_at, self._next if self.limit > 0 else 0.0)
        return max(0.0, start - self._clock())

    def accepted(self, ticket: int) -> None:
        """A message sent with ``ticket`` was accepted."""
        now = self._clock()
        self._accepted.append(now)
        while self._accepted[0] < now - WINDOW:
            self._accepted.popleft()
        if ticket != self._epoch:
            return  # sent before the last slow-down: it says nothing about the new rate
        self.pause = min(self.pause, FIRST_PAUSE / 2)  # the next throttle pauses 1 s again
        if self.limit > 0 and (self.ceiling <= 0 or self.limit < self.ceiling):
            self.limit += 1 / self.limit
            if self.ceiling > 0:
                self.limit = min(self.limit, self.ceiling)

    def throttled(self, ticket: int, *, slower: bool = True) -> float:
        """The relay asked a message sent with ``ticket`` to slow down (``slower=False``: only
        to wait, as for a refused connection). Returns the seconds until sending resumes, for
        the message's ``retry_after``."""
        now = self._clock()
        if ticket == self._epoch:
            self._epoch += 1
            self.pause = min(max(self.pause * 2, FIRST_PAUSE), MAX_PAUSE)
            if slower:
                base = self._measured(now) or self.limit
                self.limit = max(MIN_RATE, base / 2) if base > 0 else FIRST_RATE
            self._resume_at = self._next = now + self.pause
        return max(0.0, self._resume_at - now)

    def _measured(self, now: float) -> float:
        """Messages a second the relay accepted over the last WINDOW seconds (0: too few)."""
        recent = [t for t in self._accepted if t >= now - WINDOW]
        if len(recent) < 2:
            return 0.0
        return len(recent) / max(now - recent[0], 1e-3)
