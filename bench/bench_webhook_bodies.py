"""Hostile webhook bodies: 60 clients trickling 8 MB uploads at once against `newsletter web`.

A fresh SQLite project runs `newsletter web` as a child process (uvicorn, one worker) with
SendGrid, Mailgun and Postmark configured and Resend not. Then 60 clients connect at once and
each trickles an 8 MB body (16 KiB every 20 ms) at a webhook, 15 of each kind:

* Resend, which has no secret: refused from the headers (403), body chunked;
* Postmark with wrong Basic credentials: refused from the headers (401), body chunked;
* SendGrid, signature headers present, an honest ``Content-Length`` of 8 MB: over its cap (413);
* Mailgun, configured, body chunked: read up to its 256 KiB cap, then refused (413).

A client stops sending once it has its answer. Meanwhile ``/healthz`` is asked every 100 ms.
The server's resident memory is read from /proc before, during (every 50 ms) and after, with
the kernel's high-water mark (VmHWM) as the peak.

Target: every client answered with a 4xx; the server's peak RSS under 150 MB; every
``/healthz`` answered 200.

A second round sends 60 chunked bodies to Mailgun alone, more than the bodies read at once
(``web.webhooks.MAX_READING``), and reports the answers: 413 for those read, 503 with
Retry-After for the rest.

    .venv/bin/python bench/bench_webhook_bodies.py
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_web import NEWSLETTER, free_port, project, wait_healthy  # noqa: E402
from tests.process_helpers import stop_process  # noqa: E402

SECRET = "bench-webhook-bodies-secret-0123456789"
BODY = 8 * 1024 * 1024
PIECE, PAUSE = 16 * 1024, 0.02
CLIENTS_PER_KIND = 15
TARGET_MB = 150


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def kinds() -> dict[str, tuple[str, dict[str, str], bool]]:
    """kind -> (path, headers, chunked)."""
    wrong = base64.b64encode("postmark:“guess”".encode()).decode()
    return {
        "unconfigured": ("/webhooks/resend", {"svix-id": "msg_1", "svix-timestamp":
                                              str(int(time.time())), "svix-signature": "v1,x"},
                         True),
        "wrong auth": ("/webhooks/postmark", {"Authorization": f"Basic {wrong}"}, True),
        "honest length": ("/webhooks/sendgrid", {
            "X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ==",
            "X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()))}, False),
        "chunked": ("/webhooks/mailgun", {}, True),
    }


async def upload(port: int, path: str, headers: dict[str, str], chunked: bool) -> str:
    """Trickle an 8 MB body until the server answers; the answer's status ('' for none)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY}"
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                 f"\r\n{framing}\r\n{head}\r\n".encode())
    answer = asyncio.create_task(reader.readline())
    piece = b" " * PIECE
    sent = 0
    try:
        while sent < BODY and not answer.done():
            writer.write(f"{PIECE:x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            await writer.drain()
            sent += PIECE
            await asyncio.sleep(PAUSE)
        if chunked and not answer.done():
            writer.write(b"0\r\n\r\n")  # the whole body was read: its end
            await writer.drain()
    except ConnectionError:
        pass  # the server closed the connection: its answer, if any, is already here
    try:
        line = await asyncio.wait_for(answer, timeout=60)
    except (TimeoutError, ConnectionError):
        line = b""
    finally:
        writer.close()
    parts = line.split()
    return parts[1].decode() if len(parts) > 1 else ""


async def watch(port: int, pid: int, stop: asyncio.Event) -> dict:
    """Ask /healthz every 100 ms and read the server's RSS every 50 ms until ``stop``."""
    health, peak = Counter(), 0

    async def healthz() -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Connection: close\r\n\r\n")
                line = await asyncio.wait_for(reader.readline(), timeout=5)
                health[line.split()[1].decode() if line else "none"] += 1
                writer.close()
            except (TimeoutError, OSError):
                health["error"] += 1
            await asyncio.sleep(0.1)

    async def memory() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_kb(pid))
            await asyncio.sleep(0.05)

    await asyncio.gather(healthz(), memory())
    return {"health": health, "peak_kb": peak}


async def round_of(port: int, pid: int, clients: list[tuple[str, str, dict, bool]]) -> dict:
    stop = asyncio.Event()
    watching = asyncio.create_task(watch(port, pid, stop))
    started = time.monotonic()
    statuses = await asyncio.gather(*(upload(port, path, headers, chunked)
                                      for _, path, headers, chunked in clients))
    seconds = time.monotonic() - started
    stop.set()
    watched = await watching
    by_kind: dict[str, Counter] = {}
    for (kind, *_), status in zip(clients, statuses, strict=True):
        by_kind.setdefault(kind, Counter())[status] += 1
    return {"by_kind": by_kind, "statuses": statuses, "seconds": seconds, **watched}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-webhook-bodies-") as name:
        tmp = Path(name)
        cwd = project(tmp)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env.update({
            "NEWSLETTER_SECRET_KEY": SECRET,
            "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp / 'newsletter.db'}",
            "NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}",
            # A key of the right shape (P-256); no request here is ever verified against it.
            "NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": (
                "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1fl"
                "pVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="),
            "NEWSLETTER_MAILGUN_WEBHOOK_SIGNING_KEY": "bench-mailgun-signing-key",
            "NEWSLETTER_POSTMARK_WEBHOOK_AUTH": "postmark:pässwörd",
        })
        log = (tmp / "web.log").open("w")
        server = subprocess.Popen([NEWSLETTER, "web", "--port", str(port)], env=env, cwd=cwd,
                                  stdout=log, stderr=log)
        try:
            wait_healthy(port, server)
            before = rss_kb(server.pid)
            mixed = [(kind, path, headers, chunked)
                     for kind, (path, headers, chunked) in kinds().items()
                     for _ in range(CLIENTS_PER_KIND)]
            first = asyncio.run(round_of(port, server.pid, mixed))
            after = rss_kb(server.pid)
            high = rss_kb(server.pid, "VmHWM")
            path, headers, chunked = kinds()["chunked"]
            second = asyncio.run(round_of(port, server.pid,
                                          [("chunked", path, headers, chunked)] * 60))
        finally:
            stop_process(server)
            log.close()
    all_4xx = all(s.startswith("4") for s in first["statuses"])
    healthy = set(first["health"]) == {"200"}
    ok = all_4xx and healthy and high < TARGET_MB * 1024
    print(f"60 clients trickling {BODY // 2**20} MB bodies at once, answered in "
          f"{first['seconds']:.1f} s")
    for kind, counts in first["by_kind"].items():
        print(f"  {kind:14} {dict(counts)}")
    print(f"  server RSS: {before / 1024:.0f} MB before, peak {high / 1024:.0f} MB (VmHWM; "
          f"sampled {first['peak_kb'] / 1024:.0f} MB), {after / 1024:.0f} MB after")
    print(f"  /healthz meanwhile: {dict(first['health'])}")
    print(f"60 chunked bodies to Mailgun at once: {dict(Counter(second['statuses']))}, "
          f"/healthz {dict(second['health'])}")
    print(f"{'PASS' if ok else 'FAIL'} (every answer a 4xx, peak RSS under {TARGET_MB} MB, "
          "/healthz always 200)")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
