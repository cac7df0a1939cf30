"""The worker's ``GET /healthz``, served when ``worker_health_port`` is set (the Docker image's
health check asks it).

200 ``{"status": "ok", ...}`` while the scheduler runs, the database answers and no send is
stalled; 503 otherwise, saying which: ``"starting"``/``"stopped"`` (no scheduler running),
``"unavailable"`` (the database did not answer; why is in the worker's log, not in the
answer), ``"stalled"`` with each stall's line (``delivery.stalls``). Plain JSON with no
address in it; any other path is 404.

The standard library's threaded HTTP server in a daemon thread: a handful of requests a minute
need nothing more. It faces whatever can reach the port, so every connection is bounded: a
read that waits longer than ``READ_TIMEOUT`` ends it, a connection still open after
``DEADLINE`` is cut, at most ``MAX_CONNECTIONS`` are served at once (more are closed at once),
and the request line and headers are capped by ``http.server`` itself (431, 414). Nothing a
client sends can stop the worker: a failing connection is one debug line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from ..clock import utc_now
from ..config import Config
from ..errors import ConfigError

log = logging.getLogger("newsletter.worker")

PATH = "/healthz"
READ_TIMEOUT = 5.0      # seconds a read may wait for the client
DEADLINE = 10.0         # seconds a connection may stay open, however it trickles
MAX_CONNECTIONS = 8     # served at once; the health check needs one


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)


class HealthCheck:
    """What ``/healthz`` answers: from ``running()`` (the scheduler's state) and the
    database (a read of the stalls and the worker's last beat)."""

    def __init__(self, config: Config, running: Callable[[], bool | None],
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.config, self.running, self.clock = config, running, clock

    def __call__(self) -> Answer:
        running = self.running()
        if not running:
            return Answer(503, {"status": "starting" if running is None else "stopped",
                                "scheduler": "not running"})
        try:
            stalls, beat = self._read()
        except Exception as exc:  # whatever the database did: the answer is the same
            log.warning("healthz: database unavailable: %s", " ".join(str(exc).split())[:200])
            return Answer(503, {"status": "unavailable", "scheduler": "running",
                                "database": "unavailable"})
        return Answer(503 if stalls else 200, {
            "status": "stalled" if stalls else "ok", "scheduler": "running",
            "database": "ok", "stalls": stalls,
            "heartbeat": beat.isoformat() if beat is not None else None})

    def _read(self) -> tuple[list[str], datetime | None]:
        from ..delivery import beats
        from ..delivery.stalls import stalls_in
        from ..store.db import connect

        with connect(self.config.database_url).connect() as conn:
            stalls = stalls_in(conn, stall_after=self.config.stall_after, now=self.clock())
            beat = beats.read(conn).get(beats.BeatName.WORKER)
        return [s.line() for s in stalls], beat.at if beat is not None else None


class HealthServer(ThreadingHTTPServer):
    """``check``'s answer at ``PATH``, over plain HTTP on ``(host, port)`` (port 0: any free
    one, see ``port``)."""

    daemon_threads = True  # a connection never holds the worker's exit

    def __init__(self, host: str, port: int, check: Callable[[], Answer], *,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.check = check
        self.max_connections = max_connections
        self.busy = 0                    # connections being served now
        self._count = threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None

    def server_bind(self) -> None:
        # Not HTTPServer's: it looks the host's name up (socket.getfqdn), which may wait on DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.port

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="worker-healthz",
                                        kwargs={"poll_interval": 0.5}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._count:
            full = self.busy >= self.max_connections
            self.busy += not full
        if full:
            self.shutdown_request(request)  # closed at once, not queued
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        with self._count:
            self.busy -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("healthz: a connection failed", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer
    timeout = READ_TIMEOUT             # StreamRequestHandler sets it on the socket
    protocol_version = "HTTP/1.0"      # one request a connection, then closed
    default_request_version = "HTTP/1.0"  # a status line even before one was understood
    server_version = "newsletter-worker"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self._cut = threading.Timer(DEADLINE, self._cut_off)
        self._cut.daemon = True
        self._cut.start()

    def finish(self) -> None:
        self._cut.cancel()
        with contextlib.suppress(OSError):
            super().finish()

    def _cut_off(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._answer(with_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(with_body=False)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        # http.server's own refusals (400, 414, 431, 501) as JSON too, and without the
        # client's words, which its HTML page would echo.
        self.close_connection = True
        phrase = self.responses.get(code, ("error",))[0].lower()
        self._send(Answer(code, {"status": phrase}), with_body=self.command != "HEAD")

    def _answer(self, *, with_body: bool) -> None:
        if urlsplit(self.path).path != PATH:
            answer = Answer(404, {"status": "not found"})
        else:
            try:
                answer = self.server.check()
            except Exception:  # a bug of ours must not take the server down
                log.exception("healthz: the check failed")
                answer = Answer(503, {"status": "error"})
        self._send(answer, with_body=with_body)

    def _send(self, answer: Answer, *, with_body: bool) -> None:
        body = json.dumps(answer.body).encode("ascii") + b"\n"
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's)
        # Debug only: the health check asks twice a minute. The request line is the client's:
        # kept to one short line.
        log.debug("healthz: %s", re.sub(r"\s+", " ", format % args)[:200])


def start(config: Config, running: Callable[[], bool | None]) -> HealthServer:
    """Listen on ``worker_health_host:worker_health_port`` and serve in a daemon thread; a
    ``ConfigError`` naming the key when the port cannot be had."""
    host, port = config.worker_health_host, config.worker_health_port
    try:
        server = HealthServer(host, port, HealthCheck(config, running))
    except OSError as exc:
        raise ConfigError(f"config key 'worker_health_port' ({config.origin('worker_health_port')}"
                          f"): cannot listen on {host}:{port}: {exc.strerror or exc}; choose "
                          "another port, or 0 for none") from None
    server.start()
    log.info("worker health check on http://%s:%d%s", host, server.port, PATH)
    return server
