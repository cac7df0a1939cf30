"""rate_limit: messages per second across every batch of a send, with a controlled clock."""

import asyncio

from newsletter.delivery.ratelimit import RateLimiter


class Clock:
    """Time stands still unless ``advance``: concurrent sleepers then all start from now."""

    def __init__(self, advance: bool = True):
        self.now = 0.0
        self.advance = advance
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance:
            self.now += seconds


def test_batches_are_spaced_to_the_rate():
    clock = Clock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)

    async def go():
        for _ in range(4):
            await limiter.acquire(50)  # 50 messages at 100/s take half a second each

    asyncio.run(go())
    assert clock.sleeps == [0.5, 0.5, 0.5]
    assert clock.now == 1.5, "200 messages: the last batch starts at 1.5 s, ends by 2 s"


def test_concurrent_batches_share_one_budget():
    clock = Clock(advance=False)
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)

    async def go():
        await asyncio.gather(*(limiter.acquire(10) for _ in range(3)))

    asyncio.run(go())
    assert sorted(clock.sleeps) == [1.0, 2.0], "three batches of 10 at 10/s: 0 s, 1 s, 2 s"


def test_zero_means_unlimited():
    clock = Clock()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep)
    asyncio.run(limiter.acquire(10_000))
    assert clock.sleeps == []
