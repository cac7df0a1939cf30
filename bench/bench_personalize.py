"""Per-recipient cost of personalization + MIME assembly on the sample edition.

Target: at most 150 us per message on a 2-core machine. For comparison it also times the
stdlib route (EmailMessage + as_bytes) for the same content.

    .venv/bin/python bench/bench_personalize.py [--messages N]
"""

from __future__ import annotations

import argparse
import time
from email.message import EmailMessage
from pathlib import Path

from figures import figure

from newsletter.audience.recipient import Recipient
from newsletter.config import load_config
from newsletter.edition.render import render_week
from newsletter.message.model import Outgoing
from newsletter.message.outgoing import prepare

ROOT = Path(__file__).resolve().parent.parent
TARGET_US = 150.0  # per message, on a 2-core machine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    config = load_config(ROOT / "newsletter.toml", environ={})
    rendered = render_week(config, "2026-W47")
    outgoing = prepare(config, rendered)
    recipients = [
        Recipient(id=i, email=f"reader{i}@example.com", name=f"Reader Number{i}")
        for i in range(1, 1001)
    ]
    size = len(outgoing.message(outgoing.personalize(recipients[0])))
    best = min(_run(outgoing, recipients, args.messages) for _ in range(3))
    stdlib = _stdlib(config, outgoing, recipients[:500])
    print(f"message size: {size / 1024:.1f} KiB")
    figure("personalize + MIME", best, "us/message", target=TARGET_US, better="lower",
           line=f"newsletter personalize + MIME: {best:.1f} us/message (best of 3 x "
                f"{args.messages})  target <= {TARGET_US:.0f} us")
    figure("stdlib EmailMessage.as_bytes, for scale", stdlib, "us/message", better="lower",
           line=f"stdlib EmailMessage.as_bytes: {stdlib:.1f} us/message (same fields, 500 "
                "messages)")


def _run(outgoing: Outgoing, recipients: list[Recipient], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        outgoing.message(outgoing.personalize(recipients[i % len(recipients)]))
    return (time.perf_counter() - start) / n * 1e6


def _stdlib(config, outgoing: Outgoing, recipients: list[Recipient]) -> float:
    start = time.perf_counter()
    for r in recipients:
        person = outgoing.personalize(r)
        msg = EmailMessage()
        msg["From"] = config.from_address
        msg["To"] = r.email
        msg["Subject"] = outgoing.subject
        for name, value in person.headers.items():
            msg[name] = value
        msg.set_content(outgoing.text.fill(person.values))
        msg.add_alternative(outgoing.html.fill(person.html_values), subtype="html")
        msg.as_bytes()
    return (time.perf_counter() - start) / len(recipients) * 1e6


if __name__ == "__main__":
    main()
