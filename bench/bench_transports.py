"""Recipients per second and bytes sent per recipient, for every transport.

Each HTTP transport sends to the local fake provider (answering after 20 ms) with the
configured concurrency of batches in flight; SMTP sends to a local aiosmtpd server that takes
20 ms per message. The edition is padded to about 50 KB of HTML first. SendGrid and Mailgun
send the content once per request, so their bytes per recipient should be well under 2 KB.

    .venv/bin/python bench/bench_transports.py [--recipients 5000] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from figures import figure

from newsletter.audience.recipient import Recipient
from newsletter.config import load_config
from newsletter.edition.render import render_week
from newsletter.message.outgoing import prepare
from newsletter.providers import make_transport
from newsletter.providers.base import OutcomeKind

ROOT = Path(__file__).resolve().parent.parent
WEEK = "2026-W47"
PARAGRAPH = ("A longer item body, standing in for a heavier edition: it keeps the benchmark "
             "honest about what a real fifty-kilobyte newsletter costs to send. ") * 6
# Providers that take the content once per request: bytes per recipient well under 2 KB.
ONCE_PER_REQUEST = ("sendgrid", "mailgun")
BYTES_TARGET = 2_000


def padded_project(tmp: Path, target_html: int) -> Path:
    project = tmp / "project"
    project.mkdir()
    shutil.copy(ROOT / "newsletter.toml", project)
    shutil.copytree(ROOT / "templates", project / "templates")
    shutil.copytree(ROOT / "items", project / "items")
    config = load_config(project / "newsletter.toml", environ={})
    n = 6
    while len(render_week(config, WEEK).html.fill(_values()).encode()) < target_html:
        (project / "items" / WEEK / f"{n:02d}-padding.md").write_text(
            f"---\ntitle: Padding item {n}.\nurl: https://example.org/{n}\n---\n{PARAGRAPH}\n"
        )
        n += 1
    return project


def _values() -> dict[str, str]:
    return {"first_name": "Ada", "name": "Ada", "email": "a@example.com",
            "unsubscribe_url": "https://x.example/unsubscribe/1.abcdefghijklmnop",
            "manage_url": "https://x.example/manage/1.abcdefghijklmnop"}


async def drive(transport, outgoing, recipients: list[Recipient], concurrency: int) -> float:
    size = min(500, transport.max_batch)
    batches = [recipients[i:i + size] for i in range(0, len(recipients), size)]
    queue: asyncio.Queue = asyncio.Queue()
    for i, batch in enumerate(batches):
        queue.put_nowait((i, batch))

    async def worker():
        while not queue.empty():
            i, batch = queue.get_nowait()
            # Personalized here, as the send loop does before it hands a batch over.
            messages = [outgoing.personalize(r) for r in batch]
            results = await transport.send_batch(outgoing, messages, batch_key=str(i))
            assert all(r.kind == OutcomeKind.SENT for r in results), results[0]

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await transport.aclose()
    return elapsed


class FakeProcess:
    """The fake provider as a process of its own, as it would run beside a real send."""

    def __init__(self, latency_ms: float):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter.devtools.fake_provider", "--port", str(self.port),
             "--latency-ms", str(latency_ms)], stdout=subprocess.PIPE, text=True)
        self.proc.stdout.readline()  # "listening on ..."

    def stats(self) -> dict:
        return httpx.get(f"{self.base_url}/_fake/stats").json()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def http_provider(name: str, project: Path, fake: FakeProcess, n: int, concurrency: int):
    environ = {
        "NEWSLETTER_PROVIDER": name, "NEWSLETTER_PROVIDER_BASE_URL": fake.base_url,
        "NEWSLETTER_PROVIDER_API_KEY": "re_bench_key", "NEWSLETTER_SECRET_KEY": "s" * 32,
        "NEWSLETTER_MAILGUN_DOMAIN": "mg.example.com", "NEWSLETTER_AWS_ACCESS_KEY_ID": "AKIDBENCH",
        "NEWSLETTER_AWS_SECRET_ACCESS_KEY": "bench-secret",
    }
    config = load_config(project / "newsletter.toml", environ=environ)
    outgoing = prepare(config, render_week(config, WEEK))
    transport = make_transport(config)
    recipients = [Recipient(i, f"reader{i}@example.com", f"Reader {i}") for i in range(1, n + 1)]
    before = fake.stats()
    elapsed = asyncio.run(drive(transport, outgoing, recipients, concurrency))
    after = fake.stats()
    sent = after["messages"] - before["messages"]
    assert sent == n, f"{name}: the fake recorded {sent} of {n}"
    return n / elapsed, (after["bytes_received"] - before["bytes_received"]) / n


def smtp_provider(project: Path, n: int, latency: float):
    from aiosmtpd.controller import Controller

    received = {"bytes": 0, "count": 0}

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            await asyncio.sleep(latency)
            received["bytes"] += len(envelope.content)
            received["count"] += 1
            return "250 OK"

    with socket.socket() as sock:  # aiosmtpd needs a real port number to check it started
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        environ = {"NEWSLETTER_PROVIDER": "smtp", "NEWSLETTER_SMTP_HOST": "127.0.0.1",
                   "NEWSLETTER_SMTP_PORT": str(port),
                   "NEWSLETTER_SMTP_SECURITY": "none", "NEWSLETTER_SECRET_KEY": "s" * 32}
        config = load_config(project / "newsletter.toml", environ=environ)
        outgoing = prepare(config, render_week(config, WEEK))
        transport = make_transport(config)
        recipients = [Recipient(i, f"reader{i}@example.com", "R") for i in range(1, n + 1)]
        elapsed = asyncio.run(drive(transport, outgoing, recipients, 1))
    finally:
        controller.stop()
    assert received["count"] == n
    return n / elapsed, received["bytes"] / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--smtp-recipients", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nl-bench-") as tmp:
        project = padded_project(Path(tmp), 50 * 1024)
        config = load_config(project / "newsletter.toml", environ={})
        html = render_week(config, WEEK).html.fill(_values())
        print(f"edition HTML: {len(html.encode()) / 1024:.1f} KiB; fake latency "
              f"{args.latency_ms:.0f} ms; {args.concurrency} batches in flight")
        print(f"{'transport':<10} {'recipients/s':>13} {'bytes/recipient':>16}")
        fake = FakeProcess(args.latency_ms)
        try:
            for name in ("postmark", "resend", "sendgrid", "mailgun", "ses"):
                rate, per = http_provider(name, project, fake, args.recipients, args.concurrency)
                report(name, rate, per, f"{name:<10} {rate:>13,.0f} {per:>16,.0f}")
        finally:
            fake.stop()
        rate, per = smtp_provider(project, args.smtp_recipients, args.latency_ms / 1000)
        report("smtp", rate, per,
               f"{'smtp':<10} {rate:>13,.0f} {per:>16,.0f}   (one connection, 20 ms a message)")


def report(name: str, rate: float, per: float, line: str) -> None:
    figure(f"{name}: recipients/s", rate, "recipients/s", line=line)
    figure(f"{name}: bytes per recipient", per, "bytes",
           target=BYTES_TARGET if name in ONCE_PER_REQUEST else None, better="lower")


if __name__ == "__main__":
    main()
