"""Between batches: may a new one start? The canary's phases and the brake, as a function of
the send and its figures.

The send loop reads the figures through the ledger (``ledger.figures``) and asks ``decide``
before it claims each batch. In order:

1. a send another sender paused stays paused: this one stops too;
2. the brake (``brake.judge``) on this send's hard bounces and complaints from the event log
   (since ``--resume-paused``, if it was paused before): tripped, the send is to become
   ``paused`` with the reason and the figures, and no new batch starts;
3. the canary (``canary.phase``): while the slice is being sent, only its rows are claimed;
   once none is left, the wait starts (its end is stored once, whichever sender gets there
   first); until it ends this run stops, ``waiting``, and a later run (or the worker, by
   itself) carries on; after it, everyone left is sent.

``decide`` reads nothing and writes nothing: a verdict that the ledger must keep (the brake's
pause, the start of the wait) says so (``Stop.records``), and ``GateCheck``, which the loop
runs, has the ledger keep it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from ..clock import utc_now
from ..config import Config
from .brake import Thresholds, judge
from .canary import Phase, phase
from .ledger.figures import GateFigures
from .ledger.sends import SendRecord
from .states import SendStatus, StopKind, StopReason

log = logging.getLogger("newsletter.send")


@dataclass(frozen=True)
class Rules:
    """The canary's wait and the brake's thresholds, as configured."""

    limits: Thresholds
    wait: timedelta = timedelta(0)

    @classmethod
    def of(cls, config: Config) -> Rules:
        return cls(Thresholds.of(config), timedelta(seconds=config.canary_wait))


@dataclass(frozen=True)
class Go:
    """A batch may be claimed; ``canary_only``: only of the canary slice's rows."""

    canary_only: bool = False


@dataclass(frozen=True)
class Stop:
    """No batch may start: the run stops for ``reason``. ``records``: the ledger is to keep
    the verdict first (the brake's pause; the canary wait's end, ``reason.until``)."""

    reason: StopReason
    records: bool = False


def decide(send: SendRecord, figures: GateFigures, now: datetime, rules: Rules) -> Go | Stop:
    """The gate's verdict on ``send`` (its row as it is now) with ``figures`` at ``now``."""
    if send.status == SendStatus.PAUSED:
        return Stop(StopReason(StopKind.PAUSED, send.abort_reason or "paused"))
    if figures.brake is not None:
        verdict = judge(figures.brake, rules.limits, canary_size=send.canary_size)
        if verdict is not None:
            return Stop(StopReason(StopKind.PAUSED, verdict), records=True)
    stage = phase(send.canary_size, figures.canary_open, send.canary_until, now)
    if stage is not Phase.WAITING:
        return Go(canary_only=stage is Phase.CANARY)
    if send.canary_until is None:  # the slice is out: the wait starts now
        return Stop(_waiting(send, now + rules.wait), records=True)
    return Stop(_waiting(send, send.canary_until))


def _waiting(send: SendRecord, until: datetime) -> StopReason:
    return StopReason(StopKind.WAITING, f"canary sent to {send.canary_size:,}; waiting for "
                      f"bounces and complaints until {until:%Y-%m-%d %H:%M:%S} UTC",
                      until=until)


class GateLedger(Protocol):
    """What the gate needs of the ledger (``LedgerBook``); every method is blocking."""

    def gate_figures(self, *, brake: bool, fresh: bool = False
                     ) -> tuple[SendRecord, GateFigures]: ...

    def pause(self, reason: str) -> None: ...

    def start_wait(self, until: datetime) -> datetime: ...


@dataclass(frozen=True)
class GateCheck:
    """The check the loop makes before each claim: the figures from ``ledger``, the verdict
    from ``decide``, and what it says to keep kept. Blocking (the loop runs it in a thread)."""

    ledger: GateLedger
    rules: Rules
    clock: Callable[[], datetime] = utc_now
    # Told of a pause this check kept (the send as read before it, the reason): the alert.
    # It must not raise (``alerts.send_paused`` never does).
    on_pause: Callable[[SendRecord, str], object] | None = None

    def verdict(self) -> Go | Stop:
        now = self.clock()
        brake = not self.rules.limits.off
        send, found = self.ledger.gate_figures(brake=brake)
        verdict = decide(send, found, now, self.rules)
        if _pauses(verdict) and not found.exact:  # confirmed on a fresh count
            send, found = self.ledger.gate_figures(brake=brake, fresh=True)
            verdict = decide(send, found, now, self.rules)
        if not isinstance(verdict, Stop) or not verdict.records:
            return verdict
        if verdict.reason.kind is StopKind.PAUSED:
            self.ledger.pause(verdict.reason.detail)
            log.warning("%s: paused by %s", send.week, verdict.reason.detail)
            if self.on_pause is not None:
                self.on_pause(send, verdict.reason.detail)
            return verdict
        assert verdict.reason.until is not None
        until = self.ledger.start_wait(verdict.reason.until)
        return decide(replace(send, canary_until=until), found, now, self.rules)


def _pauses(verdict: Go | Stop) -> bool:
    return isinstance(verdict, Stop) and verdict.records and \
        verdict.reason.kind is StopKind.PAUSED
