"""The SMTP pacer on a fake clock: rate_limit slots shared by every connection, and the
slow-down after throttling replies (pause, halve, climb back)."""

from __future__ import annotations

import asyncio

import pytest

from newsletter.providers._smtp_pace import FIRST_RATE, MAX_PAUSE, Pacer
from tests.smtp_servers import FakeClock


def pacer_on(clock: FakeClock, rate: float = 0.0) -> Pacer:
    return Pacer(rate, clock=clock, sleep=clock.sleep)


async def test_no_rate_limit_and_no_throttling_never_waits():
    clock = FakeClock()
    pacer = pacer_on(clock)
    for _ in range(100):
        await pacer.wait()
        pacer.accepted(0)
    assert clock.sleeps == [] and pacer.delay() == 0


async def test_connections_share_one_timeline_of_slots():
    clock = FakeClock(frozen=True)  # every caller plans at 1000.0: its sleep is its slot
    pacer = pacer_on(clock, rate=10)

    async def connection():
        for _ in range(5):
            await pacer.wait()

    await asyncio.gather(*(connection() for _ in range(4)))
    # 20 messages from four connections: one slot every 0.1 s, none shared, none skipped.
    assert sorted([0.0, *clock.sleeps]) == pytest.approx([i / 10 for i in range(20)])


async def send(pacer: Pacer, clock: FakeClock, n: int, every: float) -> None:
    """``n`` accepted messages, ``every`` seconds apart (the relay's own pace)."""
    for _ in range(n):
        ticket = await pacer.wait()
        clock.now += every
        pacer.accepted(ticket)


async def test_a_throttle_pauses_everyone_and_halves_the_measured_rate():
    clock = FakeClock()
    pacer = pacer_on(clock)
    await send(pacer, clock, 200, 0.01)  # the relay took 100 a second
    ticket = await pacer.wait()
    assert pacer.throttled(ticket) == pytest.approx(1.0)
    assert pacer.limit == pytest.approx(50, rel=0.05)
    await pacer.wait()
    assert clock.sleeps == [pytest.approx(1.0)]


async def test_replies_to_messages_already_under_way_count_once():
    clock = FakeClock()
    pacer = pacer_on(clock)
    await send(pacer, clock, 100, 0.01)
    tickets = [await pacer.wait() for _ in range(4)]  # four connections, all throttled
    pauses = [pacer.throttled(t) for t in tickets]
    assert pauses == [pytest.approx(1.0)] * 4
    assert pacer.limit == pytest.approx(50, rel=0.05), "halved once, not four times"


async def test_throttling_again_doubles_the_pause_up_to_a_minute_and_a_success_resets_it():
    clock = FakeClock()
    pacer = pacer_on(clock)
    pauses = []
    for _ in range(9):
        pauses.append(pacer.throttled(await pacer.wait()))
    assert pauses == [1, 2, 4, 8, 16, 32, MAX_PAUSE, MAX_PAUSE, MAX_PAUSE]
    pacer.accepted(await pacer.wait())
    assert pacer.throttled(await pacer.wait()) == 1


async def test_the_rate_climbs_back_but_never_above_rate_limit():
    clock = FakeClock()
    pacer = pacer_on(clock, rate=20)
    await send(pacer, clock, 100, 0.05)
    pacer.throttled(await pacer.wait())
    assert pacer.limit == pytest.approx(10, rel=0.05)
    await send(pacer, clock, 50, 0.0)
    assert 10 < pacer.limit < 20
    await send(pacer, clock, 1000, 0.0)
    assert pacer.limit == 20


async def test_a_throttle_before_anything_was_accepted_starts_slow():
    clock = FakeClock()
    pacer = pacer_on(clock)
    pacer.throttled(await pacer.wait())
    assert pacer.limit == FIRST_RATE
    await send(pacer, clock, 3, 0.0)
    assert pacer.limit > FIRST_RATE


async def test_a_refused_connection_pauses_without_slowing_messages():
    clock = FakeClock()
    pacer = pacer_on(clock)
    assert pacer.throttled(await pacer.resume(), slower=False) == 1
    assert pacer.limit == 0
    await pacer.resume()
    assert clock.sleeps == [pytest.approx(1.0)]
