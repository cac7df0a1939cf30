"""Shared pieces for transport tests: a rendered Outgoing and a few recipients."""

from __future__ import annotations

from pathlib import Path

from newsletter.commands import render_week
from newsletter.config import load_config
from newsletter.recipient import Recipient
from newsletter.sending import build_outgoing

WEEK = "2026-W47"
API_KEY = "pm-test-token-0123456789"


def make_config(project: Path, **overrides: str):
    environ = {"NEWSLETTER_SECRET_KEY": "k" * 32, "NEWSLETTER_PROVIDER_API_KEY": API_KEY}
    environ.update({f"NEWSLETTER_{k.upper()}": v for k, v in overrides.items()})
    return load_config(project / "newsletter.toml", environ=environ)


def make_outgoing(config, *, test: bool = False):
    return build_outgoing(config, render_week(config, WEEK), test=test)


def recipients(n: int, start: int = 1) -> list[Recipient]:
    return [
        Recipient(id=i, email=f"reader{i}@example.com", name=f"Reader {i}")
        for i in range(start, start + n)
    ]
