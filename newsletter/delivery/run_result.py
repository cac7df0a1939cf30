"""What one run of a send came to, read one way by everyone who reports it (``newsletter
send`` prints it, the worker logs it)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .ledger.sends import SendRecord
from .reconcile import Tally
from .states import DeliveryStatus, StopKind, StopReason
from .status import counts_line, next_steps


@dataclass(frozen=True)
class RunResult:
    send: SendRecord                # the send after this run
    counts: dict[DeliveryStatus, int]   # the whole send, from the ledger, after this run
    this_run: Counter[DeliveryStatus]   # the final states this run reached
    stopped: StopReason | None = None
    note: str = ""                  # an abort that came with the last batch: the send is done
    reconciled: Tally | None = None  # what asking the provider about unknown rows did

    @property
    def aborted(self) -> bool:
        return self.stopped is not None and self.stopped.kind is StopKind.ABORTED

    def summary(self, seconds: float | None = None) -> str:
        """The send's counts and this run's share: ``3 sent, 0 failed, ... (this run: sent
        3)``, with how long the run took when ``seconds`` is given."""
        took = f" in {seconds:.1f}s" if seconds is not None else ""
        sent = self.this_run[DeliveryStatus.SENT]
        line = f"{counts_line(self.counts)} (this run: sent {sent}{took})"
        if self.reconciled is not None:
            line += f"; {self.reconciled.summary(self.send.provider)}"
        return line

    def next_steps(self) -> list[str]:
        """What the operator can run next, from the send as the ledger has it (its provider's
        idempotence as the send recorded it)."""
        return next_steps(self.send.week, self.counts, idempotent=self.send.idempotent,
                          status=self.send.status, provider=self.send.provider)
