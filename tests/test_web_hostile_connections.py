"""Hostile clients below the app: half-sent heads, stalled and trickled bodies, more
connections than the server holds, a low descriptor limit; /healthz answers throughout.

Each test runs the real server (``web.server.serve``, uvicorn with ``web.protocol``) in a
process of its own, with short deadlines so that nothing waits ten seconds, and drives it
with raw sockets on loopback. Waits end on what the server does (a close, an answer); their
timeouts are only a safety net.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from newsletter.web.protocol import RESERVED_FDS, Limits, budget
from tests.process_helpers import stop_process
from tests.web_helpers import SECRET

NEWSLETTER = str(Path(sys.executable).parent / "newsletter")
SAFETY = 60.0  # seconds: only turns a server that never acts into a clear failure

# serve() with the limits given as JSON, optionally under a lower descriptor limit.
LAUNCH = textwrap.dedent("""
    import json, resource, sys
    from newsletter.cli.output import setup_logging
    from newsletter.config import load_config
    from newsletter.web.protocol import Limits
    from newsletter.web.server import serve
    options = json.loads(sys.argv[2])
    fd_limit = options.pop("fd_limit", None)
    if fd_limit:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (fd_limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    setup_logging()
    sys.exit(serve(load_config(), "127.0.0.1", int(sys.argv[1]), limits=Limits(**options)))
""")


class Server:
    def __init__(self, port: int, proc: subprocess.Popen, log: Path):
        self.port, self.proc, self.log = port, proc, log

    def healthz(self) -> int:
        return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=SAFETY).status_code

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(database_url: str, port: int, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_SECRET_KEY=SECRET, NEWSLETTER_DATABASE_URL=database_url,
               NEWSLETTER_BASE_URL=f"http://127.0.0.1:{port}",
               NEWSLETTER_OUTBOX_DIR=str(tmp_path / "outbox"))
    return env


@contextlib.contextmanager
def running(project: Path, database_url: str, tmp_path: Path, command: list[str] | None = None,
            **limits):
    """The server on a free port, healthy; stopped (and its log checked) afterwards."""
    port = free_port()
    log = tmp_path / "web.log"
    command = [part.replace("{port}", str(port)) for part in command] if command else [
        sys.executable, "-c", LAUNCH, str(port), json.dumps(limits)]
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=project, env=environment(database_url, port, tmp_path),
                                stdout=out, stderr=out, start_new_session=True)
    server = Server(port, proc, log)
    try:
        deadline = time.monotonic() + SAFETY
        while True:
            assert proc.poll() is None, server.log_text()
            try:
                if server.healthz() == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, server.log_text()
                time.sleep(0.05)
        yield server
    finally:
        stop_process(proc)
    text = server.log_text()
    assert "Traceback" not in text and "Too many open files" not in text, text


def connect(port: int, payload: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    if payload:
        sock.sendall(payload)
    return sock


def wait_closed(socks: list[socket.socket], timeout: float = SAFETY):
    """Read every socket until the server closes it; what each received, and those still
    open when ``timeout`` ran out."""
    received = {sock: b"" for sock in socks}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(deadline - time.monotonic()):
                try:
                    data = key.fileobj.recv(65536)
                except ConnectionError:
                    data = b""
                if data:
                    received[key.fileobj] += data
                else:
                    selector.unregister(key.fileobj)
        still_open = [key.fileobj for key in selector.get_map().values()]
    return received, still_open


def closed_now(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` already (nothing else is expected on it)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def request(path: str, port: int, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode()


def test_half_sent_heads_are_closed_and_healthz_answers_meanwhile(project, database_url,
                                                                  tmp_path):
    with running(project, database_url, tmp_path, head_timeout=1.0) as server:
        port = server.port
        half_line = [connect(port, b"GET /archive/2026-W47?q=caf%C3%A9 HT") for _ in range(100)]
        silent = [connect(port) for _ in range(50)]
        # two full requests in one write, then a head that never ends ("Zoë", from an IDN)
        second = ("GET /subscribe?email=zo%C3%AB%40b%C3%BCcher.example HTTP/1.1\r\n"
                  "Host: 127.0.0.1\r\nUser-Agent: “slow” client\r\n").encode()
        kept_alive = [connect(port, request("/healthz", port) * 2 + second) for _ in range(50)]
        assert server.healthz() == 200
        received, still_open = wait_closed(half_line + silent + kept_alive)
    assert still_open == []
    assert all(received[sock].startswith(b"HTTP/1.1 408") for sock in half_line)
    assert all(received[sock] == b"" for sock in silent)
    for sock in kept_alive:
        first, second, rest = received[sock].split(b"ok\n")
        assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")
        assert rest.startswith(b"HTTP/1.1 408")


def test_a_stalled_or_trickled_body_is_cut_off(project, database_url, tmp_path):
    form = "email=jos%C3%A9%40b%C3%BCcher.example&name=Jos%C3%A9+%E2%80%9CPepe%E2%80%9D"
    head = ("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\n")
    with running(project, database_url, tmp_path, head_timeout=30.0, body_stall=0.5,
                 body_timeout=2.0) as server:
        stalled = [connect(server.port, (head.format(path="/subscribe") + form).encode())
                   for _ in range(3)]
        trickled = connect(server.port, head.format(path="/subscribe").encode())
        stop = threading.Event()

        def trickle() -> None:  # a byte at a time, never pausing as long as body_stall
            for _ in range(4000):
                if stop.wait(0.05):
                    return
                try:
                    trickled.send(b"x")
                except OSError:
                    return

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            received, still_open = wait_closed([*stalled, trickled])
        finally:
            stop.set()
            thread.join()
        assert server.healthz() == 200
    assert still_open == []
    assert all(received[sock].startswith(b"HTTP/1.1 408") for sock in stalled)


def test_past_the_bound_the_longest_waiting_connection_is_closed(project, database_url,
                                                                 tmp_path):
    with running(project, database_url, tmp_path, head_timeout=SAFETY * 2,
                 max_connections=40) as server:
        idle = [connect(server.port, b"POST /webhooks/postmark HTTP/1.1\r\n") for _ in range(60)]
        assert server.healthz() == 200  # the 61st connection: one more is closed for it
        _, still_open = wait_closed(idle[:21])
        assert still_open == []
        assert not any(closed_now(sock) for sock in idle[21:])
        assert "connections held, the most this process holds" in server.log_text()


def test_when_every_connection_is_busy_healthz_still_gets_in(project, database_url, tmp_path):
    head = ("POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            "name=Ren%C3%A9e+%E2%80%9C")
    with running(project, database_url, tmp_path, head_timeout=SAFETY * 2, body_stall=SAFETY * 2,
                 body_timeout=SAFETY * 2, max_connections=16, headroom=4) as server:
        busy = [connect(server.port, head.encode()) for _ in range(16)]
        refused = connect(server.port, request("/subscribe", server.port))
        received, still_open = wait_closed([refused])
        assert still_open == [] and received[refused].startswith(b"HTTP/1.1 503")
        assert server.healthz() == 200
        assert not any(closed_now(sock) for sock in busy)
        for sock in busy:  # so that stopping does not wait for their requests
            sock.close()


def test_the_bound_keeps_the_server_under_a_low_descriptor_limit(project, database_url,
                                                                tmp_path):
    with running(project, database_url, tmp_path, head_timeout=SAFETY * 2,
                 fd_limit=256) as server:
        idle = []
        for _ in range(20):  # 320 in all, more than the process may open
            idle += [connect(server.port, b"GET /healthz HTTP/1.1\r\nHost: ") for _ in range(16)]
            # answered after every connection before it was taken: the listen queue is
            # never full, and the server is never out of descriptors
            assert server.healthz() == 200
        # the bound is well under 256 there: all but the newest were closed
        _, still_open = wait_closed(idle[:200])
        assert still_open == []


@pytest.mark.parametrize("fd_limit", [256, 1024, 4096, 1 << 20])
def test_the_budget_fits_under_the_descriptor_limit(fd_limit):
    limits, backlog = budget(Limits(), fd_limit)
    assert RESERVED_FDS + backlog + limits.max_connections + limits.headroom <= fd_limit
    assert limits.max_connections >= 16 and backlog >= 16


@pytest.mark.slow
def test_the_command_closes_half_sent_heads_within_its_ten_seconds(project, database_url,
                                                                   tmp_path):
    with running(project, database_url, tmp_path,
                 command=[NEWSLETTER, "web", "--port", "{port}"]) as server:
        half_line = [connect(server.port, b"GET /subscribe HTTP/1.") for _ in range(200)]
        assert server.healthz() == 200
        received, still_open = wait_closed(half_line)
    assert still_open == []
    assert all(data.startswith(b"HTTP/1.1 408") for data in received.values())
