"""The gate on its own: its verdict before each batch from plain values (the send's row, the
figures, the time), and what the check the loop runs has the ledger keep, on a ledger kept
in memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from newsletter.delivery.brake import Figures, Thresholds
from newsletter.delivery.gate import GateCheck, Go, Rules, Stop, decide
from newsletter.delivery.ledger.figures import GateFigures
from newsletter.delivery.ledger.sends import SendRecord
from newsletter.delivery.states import StopKind, StopReason

NOW = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
RULES = Rules(Thresholds(min_events=3), wait=timedelta(minutes=10))
SEND = SendRecord(7, "2026-W47", "c" * 64, "sending", 500, NOW - timedelta(hours=1), None,
                  None, provider="postmark")
CANARY = replace(SEND, canary_size=50)
HEALTHY = GateFigures(Figures(sent=40, bounced=1))


def test_a_send_without_a_canary_goes_on_with_everyone():
    assert decide(SEND, HEALTHY, NOW, RULES) == Go(canary_only=False)


def test_a_send_another_sender_paused_stops_this_one_too_with_its_reason():
    paused = replace(SEND, status="paused", abort_reason="the brake: hard bounces 6.00% (…)")
    assert decide(paused, HEALTHY, NOW, RULES) == Stop(
        StopReason(StopKind.PAUSED, "the brake: hard bounces 6.00% (…)"), records=False)


def test_the_brake_tripped_pauses_the_send_with_the_figures():
    verdict = decide(CANARY, GateFigures(Figures(sent=50, bounced=4), canary_open=0), NOW,
                     RULES)
    assert isinstance(verdict, Stop) and verdict.records
    assert verdict.reason.kind is StopKind.PAUSED
    assert str(verdict.reason) == ("paused: hard bounces 8.00% (4 of 50 sent) reached "
                                   "brake_bounce_rate 5.00%")


def test_the_brake_off_is_never_asked():
    off = Rules(Thresholds(bounce_rate=0, complaint_rate=0))
    assert decide(SEND, GateFigures(None), NOW, off) == Go()


def test_while_the_slice_is_being_sent_only_its_rows_are_claimed():
    assert decide(CANARY, GateFigures(Figures(sent=10), canary_open=40), NOW, RULES) == \
        Go(canary_only=True)


def test_once_the_slice_is_out_the_wait_starts_and_is_kept():
    verdict = decide(CANARY, GateFigures(Figures(sent=50), canary_open=0), NOW, RULES)
    assert isinstance(verdict, Stop) and verdict.records
    assert verdict.reason.kind is StopKind.WAITING
    assert verdict.reason.until == NOW + timedelta(minutes=10)
    assert verdict.reason.detail == ("canary sent to 50; waiting for bounces and complaints "
                                     "until 2026-11-16 08:10:00 UTC")


def test_during_the_wait_the_run_stops_and_after_it_everyone_left_goes():
    waiting = replace(CANARY, canary_until=NOW + timedelta(minutes=3))
    during = decide(waiting, GateFigures(Figures(sent=50)), NOW, RULES)
    assert isinstance(during, Stop) and not during.records
    assert (during.reason.kind, during.reason.until) == (StopKind.WAITING, waiting.canary_until)
    after = decide(waiting, GateFigures(Figures(sent=50)), NOW + timedelta(minutes=3), RULES)
    assert after == Go(canary_only=False)


class MemoryLedger:
    """The gate's side of the ledger, in memory: the send's row as this sender reads it, its
    figures one reading at a time, and what was kept (``stored_until``: the wait's end that
    some sender stored first)."""

    def __init__(self, send: SendRecord, *readings: GateFigures,
                 stored_until: datetime | None = None):
        self.send = send
        self.readings = list(readings)
        self.stored_until = stored_until
        self.asked: list[bool] = []   # fresh or not, per reading
        self.paused: list[str] = []

    def gate_figures(self, *, brake: bool, fresh: bool = False):
        self.asked.append(fresh)
        return self.send, self.readings.pop(0)

    def pause(self, reason: str) -> None:
        self.paused.append(reason)

    def start_wait(self, until: datetime) -> datetime:
        self.stored_until = self.stored_until or until
        return self.stored_until


def check(memory: MemoryLedger, rules: Rules = RULES) -> Go | Stop:
    return GateCheck(memory, rules, clock=lambda: NOW).verdict()


def test_a_verdict_on_a_figure_carried_over_is_confirmed_on_a_fresh_count():
    stale = GateFigures(Figures(sent=1000, bounced=60), exact=False)     # 6 %
    fresh = GateFigures(Figures(sent=1500, bounced=60), exact=True)      # 4 %
    memory = MemoryLedger(SEND, stale, fresh)
    assert check(memory) == Go()
    assert memory.asked == [False, True] and memory.paused == []


def test_a_confirmed_brake_verdict_is_kept_as_the_sends_pause():
    memory = MemoryLedger(SEND, GateFigures(Figures(sent=1000, bounced=60), exact=True))
    verdict = check(memory)
    assert isinstance(verdict, Stop) and verdict.reason.kind is StopKind.PAUSED
    assert memory.asked == [False], "an exact figure is not counted again"
    assert memory.paused == [verdict.reason.detail]


def test_the_wait_is_kept_once_and_the_end_kept_first_is_the_one_that_counts():
    out = GateFigures(Figures(sent=50), canary_open=0)
    mine = MemoryLedger(CANARY, out)
    verdict = check(mine)
    assert isinstance(verdict, Stop) and not verdict.records
    assert verdict.reason.until == mine.stored_until == NOW + timedelta(minutes=10)

    # Another sender stored an end that has passed by now: this one sends the rest.
    theirs = MemoryLedger(CANARY, out, stored_until=NOW - timedelta(seconds=1))
    assert check(theirs) == Go(canary_only=False)


def test_no_wait_configured_sends_the_rest_at_once_and_still_keeps_the_end():
    memory = MemoryLedger(CANARY, GateFigures(Figures(sent=50), canary_open=0))
    assert check(memory, Rules(RULES.limits)) == Go(canary_only=False)
    assert memory.stored_until == NOW
