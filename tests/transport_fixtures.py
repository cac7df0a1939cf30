"""Shared pieces for transport tests: a rendered Outgoing, a few recipients and their
personalized messages (what a transport is given)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from newsletter.audience.recipient import Recipient
from newsletter.config import load_config
from newsletter.edition.render import render_week
from newsletter.message.model import Personalized
from newsletter.message.outgoing import prepare

WEEK = "2026-W47"
API_KEY = "pm-test-token-0123456789"


def make_config(project: Path, **overrides: str):
    environ = {"NEWSLETTER_SECRET_KEY": "k" * 32, "NEWSLETTER_PROVIDER_API_KEY": API_KEY}
    environ.update({f"NEWSLETTER_{k.upper()}": v for k, v in overrides.items()})
    return load_config(project / "newsletter.toml", environ=environ)


def make_outgoing(config, *, test: bool = False):
    return prepare(config, render_week(config, WEEK), test=test)


def personalized(outgoing, batch: list[Recipient]) -> list[Personalized]:
    """The batch as the sender hands it to a transport: each recipient personalized."""
    return [outgoing.personalize(r) for r in batch]


def personal_parts(outgoing, recipient: Recipient) -> SimpleNamespace:
    """What one recipient's message holds: its filled-in HTML and text, and its headers."""
    person = outgoing.personalize(recipient)
    html = outgoing.html.fill(person.html_values)
    text = outgoing.text.fill(person.values)
    return SimpleNamespace(html=html, text=text, headers=dict(person.headers))


def recipients(n: int, start: int = 1) -> list[Recipient]:
    return [
        Recipient(id=i, email=f"reader{i}@example.com", name=f"Reader {i}")
        for i in range(start, start + n)
    ]


async def send_with(cls, config, outgoing, handler, *, n: int = 3, sleeps=None, batch=None,
                    batch_key: str = "b1", **options):
    """One batch through transport ``cls`` against a MockTransport ``handler``; the waits the
    retry rules ask for are recorded in ``sleeps`` instead of slept."""
    import httpx

    from newsletter.providers._http import RetryPolicy

    sleeps = [] if sleeps is None else sleeps

    async def sleep(seconds):
        sleeps.append(seconds)

    transport = cls(config, transport=httpx.MockTransport(handler), sleep=sleep,
                    retry=RetryPolicy(attempts=3, base_delay=0.01), **options)
    try:
        messages = personalized(outgoing, batch or recipients(n))
        return await transport.send_batch(outgoing, messages, batch_key=batch_key)
    finally:
        await transport.aclose()
