"""Hostile clients against a real `newsletter web`: a flood of idle half-requests, and
webhook bodies trickled by many clients at once.

`newsletter web` runs as a child process (uvicorn, one worker, SQLite) in a temporary project;
every client is on loopback, in this process.

1. **Idle connections.** 1,500 connections each send half a request line and then nothing.
   With them all open, GET /healthz is timed on fresh connections (five, half a second
   apart, the server's open descriptors counted at each); then the share of the 1,500 the
   server has closed within 30 s and the time until 90 % were closed are read. Run under the
   process's own descriptor limit and again under `ulimit -n 1024`.
2. **Trickled bodies.** 60 clients at once POST 8 MiB bodies to /webhooks/postmark, then (on a
   fresh server) to /webhooks/mailgun, 16 KiB every 10 ms, half with a Content-Length and
   half chunked; once with no provider secrets configured, once with them (the Postmark
   clients then send the right credentials, the worst case: their bodies must be read).
   /healthz is polled every quarter second throughout; the server's peak RSS (VmHWM) is read
   at the end.

Targets: /healthz answers within 2 s; at least 90 % of the idle connections closed within
30 s; every trickling client answered with a 4xx; peak RSS under 150 MB.

    .venv/bin/python bench/bench_hostile.py [--idle 1500] [--tricklers 60]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from figures import figure, table_judges  # noqa: E402

from bench.bench_web import NEWSLETTER, environment, free_port, project, wait_healthy  # noqa: E402
from tests.process_helpers import stop_process  # noqa: E402

HOST = "127.0.0.1"
HEALTH_TARGET = 2.0       # seconds
CLOSE_WINDOW = 30.0       # seconds
CLOSE_TARGET = 0.90       # share of the idle connections closed within the window
RSS_TARGET = 150 * 10**6  # bytes
BODY = 8 * 2**20          # what each trickling client would send
PIECE = 16 * 2**10
PAUSE = 0.010             # seconds between two pieces
TRICKLE_DEADLINE = 120.0  # seconds: a client never answered counts as a failure
CONNECTING = 200          # connections opened at once
POSTMARK_AUTH = "postmark-hooks:pässwörd-“bench”"
SECRETS = {"NEWSLETTER_POSTMARK_WEBHOOK_AUTH": POSTMARK_AUTH,
           "NEWSLETTER_MAILGUN_WEBHOOK_SIGNING_KEY": "key-bench-0123456789abcdef0123456789ab"}


# -- the server ---------------------------------------------------------------------------


class Server:
    """`newsletter web` in a temporary project, optionally under a lower descriptor limit."""

    def __init__(self, tmp: Path, name: str, *, fd_limit: int | None = None,
                 secrets: bool = False):
        self.port = free_port()
        (tmp / name).mkdir()
        cwd = project(tmp / name)
        env = environment(f"sqlite:///{tmp / name / 'newsletter.db'}", self.port,
                          tmp / name / "outbox")
        if secrets:
            env.update(SECRETS)
        self.log_path = tmp / name / "web.log"
        self.fd_limit = fd_limit or resource.getrlimit(resource.RLIMIT_NOFILE)[0]

        def limit() -> None:
            if fd_limit:
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, hard))

        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen([NEWSLETTER, "web", "--port", str(self.port)], env=env,
                                         cwd=cwd, stdout=log, stderr=log, preexec_fn=limit)
        try:
            wait_healthy(self.port, self.proc)
        except BaseException:
            self.stop()
            raise

    def status(self, field: str) -> int:
        """A VmRSS-like line of /proc/<pid>/status, in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def faults(self) -> list[str]:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [marker for marker in ("Traceback", "Too many open files", "out of system resource")
                if marker in text]

    def stop(self) -> None:
        stop_process(self.proc)


async def healthz(port: int) -> float:
    """Seconds for GET /healthz on a fresh connection to answer 200 (inf otherwise)."""
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 30)
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
                     .encode())
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
    except (OSError, TimeoutError):
        return float("inf")
    return time.perf_counter() - start if answer.startswith(b"HTTP/1.1 200") else float("inf")


# -- 1. idle connections ------------------------------------------------------------------


async def open_idle(port: int, n: int):
    """``n`` connections that each sent half a request line: their readers and writers."""
    gate = asyncio.Semaphore(CONNECTING)
    keep = []  # the writers, so that nothing closes the connections from this side

    async def one() -> asyncio.StreamReader:
        async with gate:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"GET /archive/2026-W47?q=caf%C3%A9 HTT")
            keep.append(writer)
            return reader

    readers = await asyncio.gather(*(one() for _ in range(n)))
    return readers, keep


async def closed(reader: asyncio.StreamReader) -> float:
    """When the server closed this connection."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    return time.perf_counter()


async def idle_flood(server: Server, n: int) -> dict:
    readers, writers = await open_idle(server.port, n)
    opened = time.perf_counter()
    watchers = [asyncio.ensure_future(closed(reader)) for reader in readers]
    probes, descriptors = [], 0
    for _ in range(5):
        descriptors = max(descriptors, server.descriptors())
        probes.append(await healthz(server.port))
        await asyncio.sleep(0.5)
    remaining = CLOSE_WINDOW - (time.perf_counter() - opened)
    done, pending = await asyncio.wait(watchers, timeout=max(remaining, 0))
    for task in pending:
        task.cancel()
    for writer in writers:
        writer.close()
    times = sorted(task.result() - opened for task in done)
    ninety = times[int(n * CLOSE_TARGET) - 1] if len(times) >= n * CLOSE_TARGET else None
    return {"health": max(probes), "closed": len(done) / n, "ninety": ninety,
            "descriptors": descriptors}


# -- 2. trickled bodies -------------------------------------------------------------------


def trickle_head(provider: str, port: int, chunked: bool, secrets: bool) -> bytes:
    lines = [f"POST /webhooks/{provider} HTTP/1.1", f"Host: {HOST}:{port}",
             "Content-Type: application/json", "User-Agent: bench_hostile"]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY}")
    if secrets and provider == "postmark":
        token = base64.b64encode(POSTMARK_AUTH.encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def trickle_piece() -> bytes:
    start = '{"RecordType": "Bounce", "Email": "zoë@bücher.example", "Description": "“'
    text = (start + "…" * PIECE).encode()[:PIECE]
    return text


async def trickler(port: int, provider: str, chunked: bool, secrets: bool) -> str:
    """One client trickling its body until answered; the answer's status, or what befell it."""
    piece = trickle_piece()
    frame = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
    deadline = time.monotonic() + TRICKLE_DEADLINE
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return "refused"
    try:
        writer.write(trickle_head(provider, port, chunked, secrets))
        answer = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
        sent = 0
        while sent < BODY and not answer.done() and time.monotonic() < deadline:
            writer.write(frame)
            sent += len(piece)
            drain = asyncio.ensure_future(writer.drain())
            await asyncio.wait({drain, answer}, return_when=asyncio.FIRST_COMPLETED,
                               timeout=deadline - time.monotonic())
            if not drain.done():
                drain.cancel()
                break
            if drain.exception() is not None:
                break
            await asyncio.wait({answer}, timeout=PAUSE)
        if chunked and not answer.done() and sent >= BODY:
            writer.write(b"0\r\n\r\n")
        head = await asyncio.wait_for(answer, max(deadline - time.monotonic(), 0.1))
        return head.split(b" ", 2)[1].decode()
    except (ConnectionError, asyncio.IncompleteReadError):
        return "closed"
    except TimeoutError:
        return "no answer"
    finally:
        writer.close()


async def trickle(server: Server, provider: str, n: int, secrets: bool) -> dict:
    baseline = server.status("VmRSS")
    done = asyncio.Event()
    probes: list[float] = []

    async def poll() -> None:
        while not done.is_set():
            probes.append(await healthz(server.port))
            await asyncio.sleep(0.25)

    poller = asyncio.ensure_future(poll())
    start = time.perf_counter()
    statuses = await asyncio.gather(*(trickler(server.port, provider, i % 2 == 1, secrets)
                                      for i in range(n)))
    seconds = time.perf_counter() - start
    done.set()
    await poller
    return {"statuses": Counter(statuses), "seconds": seconds, "baseline": baseline,
            "peak": server.status("VmHWM"), "health": max(probes)}


# -- the report ---------------------------------------------------------------------------


def mb(size: int) -> str:
    return f"{size / 10**6:.0f} MB"


def seconds(value: float | None) -> str:
    return "never" if value is None or value == float("inf") else f"{value:.2f} s"


def run_idle(tmp: Path, n: int, fd_limit: int | None, name: str) -> bool:
    server = Server(tmp, name, fd_limit=fd_limit)
    try:
        result = asyncio.run(idle_flood(server, n))
    finally:
        server.stop()
    faults = server.faults()
    fast = result["health"] <= HEALTH_TARGET and result["closed"] >= CLOSE_TARGET
    ok = fast and not faults
    label = f"ulimit -n {server.fd_limit}"
    about = f"{n:,} idle connections, {label}"
    figure(f"{about}: /healthz", result["health"], "s", target=HEALTH_TARGET, better="lower",
           line=f"idle x{n:<5} {label:17} /healthz {seconds(result['health']):>8} (<= 2 s)   "
                f"closed in 30 s {result['closed']:6.1%} (>= 90 %)   90 % closed after "
                f"{seconds(result['ninety'])}   server fds at most {result['descriptors']}"
                f"{'   log: ' + ', '.join(faults) if faults else ''}   "
                f"{'PASS' if ok else 'FAIL'}")
    figure(f"{about}: closed within {CLOSE_WINDOW:.0f} s", result["closed"] * 100, "%",
           target=CLOSE_TARGET * 100)
    return not faults and (fast or table_judges())


def run_trickle(tmp: Path, n: int, provider: str, secrets: bool) -> bool:
    server = Server(tmp, f"trickle-{provider}-{'secrets' if secrets else 'none'}",
                    secrets=secrets)
    try:
        result = asyncio.run(trickle(server, provider, n, secrets))
    finally:
        server.stop()
    statuses = result["statuses"]
    all_4xx = all(status.isdigit() and 400 <= int(status) < 500 for status in statuses)
    faults = server.faults()
    fast = result["peak"] < RSS_TARGET and result["health"] <= HEALTH_TARGET
    ok = all_4xx and fast and not faults
    answers = " ".join(f"{status}x{count}" for status, count in sorted(statuses.items()))
    label = f"{provider}, {'secrets set' if secrets else 'no secrets'}"
    about = f"{n} trickled bodies, {label}"
    figure(f"{about}: peak RSS", result["peak"] / 10**6, "MB", target=RSS_TARGET / 10**6,
           better="lower",
           line=f"trickle x{n:<3} {label:22} answers {answers:24} (all 4xx)   peak RSS "
                f"{mb(result['peak']):>7} (< 150 MB; {mb(result['baseline'])} before)   "
                f"/healthz max {seconds(result['health'])} (<= 2 s)   in "
                f"{result['seconds']:.1f} s{'   log: ' + ', '.join(faults) if faults else ''}   "
                f"{'PASS' if ok else 'FAIL'}")
    figure(f"{about}: /healthz at most", result["health"], "s", target=HEALTH_TARGET,
           better="lower")
    return all_4xx and not faults and (fast or table_judges())


def raise_own_limit(needed: int) -> None:
    """This process holds every idle connection's other end."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"needs {needed} descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=1500)
    parser.add_argument("--tricklers", type=int, default=60)
    args = parser.parse_args()
    raise_own_limit(args.idle + args.tricklers + 256)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as name:
        tmp = Path(name)
        results.append(run_idle(tmp, args.idle, None, "idle-own-limit"))
        results.append(run_idle(tmp, args.idle, 1024, "idle-1024"))
        for secrets in (False, True):
            for provider in ("postmark", "mailgun"):
                results.append(run_trickle(tmp, args.tricklers, provider, secrets))
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
