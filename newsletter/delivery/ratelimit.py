"""An asyncio rate limiter in messages per second, shared by every batch of a send.

Each caller reserves a slot on a virtual timeline (``n / rate`` seconds long) and sleeps until
its slot starts, so concurrent batches are spaced evenly instead of bursting together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    async def acquire(self, n: int = 1) -> None:
        if self.rate <= 0:
            return
        now = self._clock()
        start = max(now, self._next)
        self._next = start + n / self.rate
        if start > now:
            await self._sleep(start - now)
