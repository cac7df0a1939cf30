"""``newsletter send --test``: the edition to the given addresses only, subject "[TEST] ...".

No subscriber, send or ledger row is touched; each run gets fresh batch keys, so an idempotent
provider does not take a second test send for a repeat of the first.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..audience.recipient import Recipient
from ..config import Config
from ..edition.render import render_week
from ..errors import NewsletterError
from ..providers import make_transport
from ..providers.base import Outgoing, Status, Transport
from .outgoing import prepare
from .ratelimit import RateLimiter
from .send import check_sender


@dataclass(frozen=True)
class TestOutcome:
    email: str
    status: Status
    message_id: str
    reason: str


def send_test(config: Config, week: str | None, addresses: Sequence[str],
              **transport_options) -> list[TestOutcome]:
    from ..audience.addresses import parse_address

    check_sender(config)
    recipients = []
    for value in addresses:
        try:
            parsed = parse_address(value)
        except NewsletterError as exc:
            raise NewsletterError(f"--to {value!r}: {exc}") from None
        recipients.append(Recipient(id=0, email=parsed.email, name=parsed.name or ""))
    rendered = render_week(config, week)
    transport = make_transport(config, out_dir=test_out_dir(config, rendered.week),
                               **transport_options)
    outgoing = prepare(config, rendered, test=True)
    return asyncio.run(_send_all(config, outgoing, recipients, transport))


async def _send_all(config: Config, outgoing: Outgoing, recipients: list[Recipient],
                    transport: Transport) -> list[TestOutcome]:
    limiter = RateLimiter(config.rate_limit)
    size = min(config.batch_size, transport.max_batch)
    outcomes = []
    run = secrets.token_hex(6)
    try:
        for start in range(0, len(recipients), size):
            batch = recipients[start:start + size]
            await limiter.acquire(len(batch))
            results = await transport.send_batch(outgoing, batch, batch_key=f"test.{run}.{start}")
            for recipient, result in zip(batch, results, strict=True):
                outcomes.append(TestOutcome(recipient.email, result.status, result.message_id,
                                            result.reason))
    finally:
        await transport.aclose()
    return outcomes


def test_out_dir(config: Config, week: str) -> Path:
    return Path(config.outbox_dir) / f"test-{week}"
