"""HTTP/1.1 under the app: uvicorn's httptools protocol with the limits a public server needs.

uvicorn closes a keep-alive connection that goes quiet between requests, and nothing else: a
client that connects and sends half a request line, or a head and then a body that never
ends, holds its connection (and a file descriptor) for ever. This protocol adds

- a **head deadline**: a connection that is not in a request must send a complete request
  head within ``head_timeout`` seconds of connecting (or of its last response), or it is
  closed; one that sent part of a head is told ``408`` first. The deadline is not moved by
  data, so sending a byte at a time does not stretch it;
- a **body deadline**: once a head announces a body, it must keep arriving (no gap longer
  than ``body_stall`` seconds) and be complete within ``body_timeout`` seconds, or the
  connection is closed (``408`` first when the app has not answered yet);
- a **bound on connections held at once** (``max_connections``): beyond it a new connection
  closes the connection that has waited longest for a request head (an idle keep-alive one
  or a slow client); when every connection is inside a request, up to ``headroom`` more are
  let in, where ``/healthz`` is served and anything else answered ``503``; past that a new
  connection is closed at once.

``budget`` fits the bound and the listen backlog under the process's descriptor limit
(``ulimit -n``), so that accepting never fails with "too many open files".
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass, replace

from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("newsletter.web")

# Descriptors kept for everything but client connections: the database pool, SQLite's files,
# log files, the outbox's SMTP connection, webhook verifiers' HTTP clients, templates.
RESERVED_FDS = 128
MAX_BACKLOG = 2048         # uvicorn's default listen backlog
WARN_EVERY = 60.0          # seconds between two "connection bound reached" warnings
HEALTH_PATH = "/healthz"


@dataclass(frozen=True)
class Limits:
    """How long a client may take, and how many connections are held at once."""

    head_timeout: float = 10.0   # seconds to send a complete request head
    body_stall: float = 10.0     # longest pause inside a request body
    body_timeout: float = 30.0   # a whole body (forms and webhooks are small)
    max_connections: int = 1000  # held at once before the longest-waiting is closed
    headroom: int = 32           # beyond that, for /healthz while every connection is busy


def budget(limits: Limits, fd_limit: int | None = None) -> tuple[Limits, int]:
    """``limits`` with ``max_connections`` lowered to fit ``fd_limit`` (default: the
    process's soft RLIMIT_NOFILE), and the listen backlog to use.

    The event loop accepts up to a backlog's worth of connections before any of them is
    seen by the protocol, so those count against the descriptors too."""
    if fd_limit is None:
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if fd_limit == resource.RLIM_INFINITY:
            fd_limit = 1 << 20
    spare = max(fd_limit - RESERVED_FDS, 64)
    backlog = max(min(MAX_BACKLOG, spare // 4), 16)
    connections = max(min(limits.max_connections, spare - backlog - limits.headroom), 16)
    return replace(limits, max_connections=connections), backlog


def protocol_class(limits: Limits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for one server: ``limits`` and one registry of the connections
    waiting for a request head, shared by all of that server's connections."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"limits": limits, "waiting": {}, "warned_at": None})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One client connection (see the module's docstring); made by ``protocol_class``."""

    limits: Limits
    # Connections not inside a request, oldest wait first (a dict keeps insertion order).
    waiting: dict[GuardedHttpToolsProtocol, None]
    warned_at: float | None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_deadline = 0.0
        self._body_seen = 0.0

    # -- the connection ---------------------------------------------------------------

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        held = len(self.connections)
        if held > self.limits.max_connections and not self._close_longest_waiting():
            if held > self.limits.max_connections + self.limits.headroom:
                transport.close()
                return
            self.app = _health_only(self.app)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting.pop(self, None)
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def _close_longest_waiting(self) -> bool:
        """Close the connection that has waited longest for a head; False if there is none."""
        self._warn_bound_reached()
        while self.waiting:
            oldest = next(iter(self.waiting))
            del self.waiting[oldest]
            if not oldest.transport.is_closing():
                oldest.transport.close()
                return True
        return False

    def _warn_bound_reached(self) -> None:
        cls = type(self)
        now = self.loop.time()
        if cls.warned_at is None or now - cls.warned_at >= WARN_EVERY:
            cls.warned_at = now
            log.warning("web: %d connections held, the most this process holds: the ones "
                        "waiting longest for a request are being closed (a flood of idle "
                        "clients? a proxy in front can limit them per address)",
                        self.limits.max_connections)

    # -- the head ---------------------------------------------------------------------

    def _await_head(self) -> None:
        """Between requests: the next head is due within ``head_timeout``."""
        self.waiting[self] = None
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True

    def on_headers_complete(self) -> None:
        self.waiting.pop(self, None)
        self._cancel_head_timer()
        self._head_begun = False
        if any(name in (b"content-length", b"transfer-encoding") for name, _ in self.headers):
            now = self.loop.time()
            self._body_deadline = now + self.limits.body_timeout
            self._body_seen = now
            self._body_timer = self.loop.call_later(
                min(self.limits.body_stall, self.limits.body_timeout), self._body_late)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        idle_next = not self.pipeline  # else uvicorn starts the next request in line
        super().on_response_complete()
        if idle_next and not self.transport.is_closing():
            self._await_head()

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_begun:
            self._send_408()
        self.transport.close()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    # -- the body ---------------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        self._body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        super().on_message_complete()

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused:
            self._body_seen = now  # the app has not read what came: not the client's pause
        due = min(self._body_seen + self.limits.body_stall, self._body_deadline)
        if now < due:
            self._body_timer = self.loop.call_later(due - now, self._body_late)
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            cycle.disconnected = True  # the app, still reading, is told the client left
            self._send_408()
        self.transport.close()

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _send_408(self) -> None:
        body = b"request timeout\n"
        self.transport.write(b"".join([
            STATUS_LINE[408], *(name + b": " + value + b"\r\n"
                                for name, value in self.server_state.default_headers),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n", body]))


def _health_only(app):
    """For a connection let in past the bound: ``/healthz`` is served, the rest gets 503."""

    async def guarded(scope, receive, send) -> None:
        if scope.get("path") == HEALTH_PATH:
            await app(scope, receive, send)
        else:
            await service_unavailable(scope, receive, send)

    return guarded
