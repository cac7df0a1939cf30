"""What a send needs before its first batch, and the test send to yourself."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..audience.recipient import Recipient
from ..config import Config
from ..edition.render import RenderedEdition
from ..errors import NewsletterError
from ..providers.base import Outgoing, Status, Transport
from .mime import MessageBuilder
from .personalize import Personalizer
from .ratelimit import RateLimiter

TEST_PREFIX = "[TEST] "


def build_outgoing(config: Config, rendered: RenderedEdition, *, test: bool = False) -> Outgoing:
    personalizer = Personalizer(config, rendered, test=test)
    prefix = TEST_PREFIX if test else ""
    return Outgoing(
        personalizer=personalizer,
        builder=MessageBuilder(config, personalizer, subject_prefix=prefix),
        from_address=config.from_address,
        from_name=config.from_name or config.name,
        reply_to=config.reply_to,
        subject=prefix + rendered.subject,
        edition_key=f"{rendered.week}.{rendered.content_hash[:12]}",
    )


def check_sender(config: Config) -> None:
    config.require("from_address", "base_url", "postal_address")


@dataclass(frozen=True)
class TestOutcome:
    email: str
    status: Status
    message_id: str
    reason: str


def send_test(config: Config, rendered: RenderedEdition, addresses: Sequence[str],
              transport: Transport) -> list[TestOutcome]:
    """Send the edition to ``addresses`` only; no subscriber or send record is touched."""
    from ..audience.subscribers import parse_address

    check_sender(config)
    recipients = []
    for value in addresses:
        try:
            parsed = parse_address(value)
        except NewsletterError as exc:
            raise NewsletterError(f"--to {value!r}: {exc}") from None
        recipients.append(Recipient(id=0, email=parsed.email, name=parsed.name or ""))
    outgoing = build_outgoing(config, rendered, test=True)
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
            # A fresh key per run: an idempotent provider must not treat a second test send
            # as a repeat of the first.
            key = f"test.{run}.{start}"
            results = await transport.send_batch(outgoing, batch, batch_key=key)
            for recipient, result in zip(batch, results, strict=True):
                outcomes.append(TestOutcome(recipient.email, result.status, result.message_id,
                                            result.reason))
    finally:
        await transport.aclose()
    return outcomes


def test_out_dir(config: Config, week: str) -> Path:
    return Path(config.outbox_dir) / f"test-{week}"
