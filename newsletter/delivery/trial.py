"""``newsletter send --test``: the edition to the given addresses only, subject "[TEST] ...".

It goes through the same send loop as a real send, with a ledger of its own in memory: no
subscriber, send or ledger row is touched. Each run gets fresh batch keys, so an idempotent
provider does not take a second test send for a repeat of the first.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..audience.recipient import Recipient
from ..config import Config
from ..edition.render import render_week
from ..errors import NewsletterError
from ..message.outgoing import prepare
from ..providers import make_transport
from ..providers.base import Outcome, OutcomeKind
from .ledger.claiming import Claim
from .loop import Delivery
from .send import check_sender
from .states import DeliveryStatus, StopKind

# What ends a test recipient's row: each is tried once, so a retry or untried is "not sent".
ENDED = (OutcomeKind.SENT, OutcomeKind.FAILED, OutcomeKind.UNKNOWN)


@dataclass(frozen=True)
class TrialOutcome:
    """What became of one test recipient: the provider's answer (``kind``; None when the run
    stopped before the message was handed over)."""

    email: str
    kind: OutcomeKind | None
    message_id: str
    reason: str

    @property
    def status(self) -> str:
        """The outcome in words: ``sent``, ``failed``, ``retry``, ``unknown`` or ``not sent``."""
        return "not sent" if self.kind in (None, OutcomeKind.UNTRIED) else str(self.kind)


@dataclass
class MemoryBook:
    """The test send's ledger: its recipients in batches, each tried once."""

    recipients: list[Recipient]
    batch_size: int
    run: str = field(default_factory=lambda: secrets.token_hex(6))
    outcomes: dict[int, Outcome] = field(default_factory=dict)  # by position
    _next: int = 0

    @property
    def total(self) -> int:
        return len(self.recipients)

    def done_before(self) -> int:
        return 0

    def claim(self, *, canary_only: bool = False) -> Claim | None:
        start = self._next
        if start >= len(self.recipients):
            return None
        self._next = start + self.batch_size
        # Positions go in the claim (test recipients all have id 0): see record.
        return Claim(f"test.{self.run}.{start}", self.recipients[start:self._next])

    def record(self, claim: Claim, outcomes: Sequence[Outcome]) -> Counter[DeliveryStatus]:
        start = int(claim.batch_key.rsplit(".", 1)[1])
        for offset, outcome in enumerate(outcomes):
            self.outcomes[start + offset] = outcome
        return Counter(DeliveryStatus(o.kind) for o in outcomes if o.kind in ENDED)

    def recover(self) -> None:
        pass  # no other sender

    def wait_hint(self, *, canary_only: bool = False) -> float | None:
        return None

    def is_transient(self, exc: BaseException) -> bool:
        return False


def send_test(config: Config, week: str | None,
              addresses: Sequence[str]) -> list[TrialOutcome]:
    """Send the week's edition to ``addresses`` only (through the configured provider), each
    tried once; what became of each, in the order given."""
    from ..audience.addresses import parse_address

    check_sender(config)
    recipients: list[Recipient] = []
    for value in addresses:
        try:
            parsed = parse_address(value)
        except NewsletterError as exc:
            raise NewsletterError(f"--to {value!r}: {exc}") from None
        recipients.append(Recipient(id=0, email=parsed.email, name=parsed.name or ""))
    rendered = render_week(config, week)
    transport = make_transport(config, out_dir=trial_out_dir(config, rendered.week))
    book = MemoryBook(recipients, min(config.batch_size, transport.max_batch))
    delivery = Delivery(config, transport, prepare(config, rendered, test=True), book)
    _, stopped = asyncio.run(delivery.run())
    if stopped is not None and stopped.kind is StopKind.ABORTED:
        raise NewsletterError(stopped.detail)
    outcomes: list[TrialOutcome] = []
    for i, recipient in enumerate(recipients):
        o = book.outcomes.get(i)
        if o is None:
            outcomes.append(TrialOutcome(recipient.email, None, "", str(stopped or "")))
            continue
        outcomes.append(TrialOutcome(recipient.email, o.kind, o.message_id, o.reason))
    return outcomes


def trial_out_dir(config: Config, week: str) -> Path:
    return Path(config.outbox_dir) / f"test-{week}"
