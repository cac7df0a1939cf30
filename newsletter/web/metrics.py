"""``GET /metrics``: Prometheus's text format, for whoever holds ``metrics_token``.

The route exists only when ``metrics_token`` is set (``app._routes``); without it the path is
not found like any other. A scrape sends ``Authorization: Bearer <token>``; anything else
(no header, another scheme, a wrong token) gets 401 with ``WWW-Authenticate: Bearer`` and
nothing more, the token compared in constant time.

What is exported: the database's figures (``metrics_collector``, read at most every few
seconds) and this process's requests (``request_metrics``), in a registry of this app's own,
never prometheus_client's global one (a process may hold several apps: the tests do). No label
names a person: states, kinds, provider names, error codes and route templates only.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..delivery.totals import read_totals
from ..store.db import DatabaseError
from .common import in_thread
from .metrics_collector import CachedTotals, DatabaseCollector
from .request_metrics import RequestFigures

log = logging.getLogger("newsletter.web")

NO_STORE = {"Cache-Control": "no-store"}


class Metrics:
    """The app's registry, its request figures and the cached database figures."""

    def __init__(self, token: str, engine: sa.Engine, *, stall_after: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._token = token.encode("utf-8")
        self.registry = CollectorRegistry()
        self.requests = RequestFigures(self.registry)
        self.totals = CachedTotals(
            lambda: read_totals(engine, stall_after=stall_after), clock=clock)
        self.registry.register(DatabaseCollector(self.totals))

    def allows(self, authorization: str | None) -> bool:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        # Header values reach Starlette as latin-1: back to the bytes the client sent.
        return hmac.compare_digest(given.strip().encode("latin-1"), self._token)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    if not metrics.allows(request.headers.get("authorization")):
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer", **NO_STORE})
    try:
        body = await in_thread(metrics.render)
    except (DatabaseError, sa.exc.SQLAlchemyError) as exc:
        log.warning("metrics: database unavailable: %s", " ".join(str(exc).split())[:200])
        return PlainTextResponse("database unavailable\n", status_code=503, headers=NO_STORE)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)
