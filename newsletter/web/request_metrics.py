"""The app's own requests, counted and timed per route for ``/metrics``.

Labels are the route's path template (``/unsubscribe/{token}``, never the path itself: a
token, a week or any stranger's junk would each make a new series), the method (one of
``METHODS``, else ``other``: the client writes it) and the status class (``2xx``). A request
no route matched is ``unmatched``. Every label so comes from a short fixed list.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send

from .access_log import answered

METHODS = frozenset({"GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"})
UNMATCHED = "unmatched"
LABELS = ("route", "method", "status")


class RequestFigures:
    """The request counter and latency histogram, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter("newsletter_http_requests", "HTTP requests answered.",
                                LABELS, registry=registry)
        self.seconds = Histogram("newsletter_http_request_duration_seconds",
                                 "Time to answer an HTTP request.", LABELS, registry=registry)

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        labels = (route_of(scope), method_of(scope), f"{status // 100}xx")
        self.requests.labels(*labels).inc()
        self.seconds.labels(*labels).observe(seconds)


def route_of(scope: Scope) -> str:
    # The router puts the route it matched (or that matched all but the method) in the scope.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def method_of(scope: Scope) -> str:
    method = scope.get("method", "")
    return method if method in METHODS else "other"


class RequestMetrics:
    """ASGI middleware: each HTTP request's route, method, status and time into ``figures``."""

    def __init__(self, app: ASGIApp, figures: RequestFigures):
        self.app, self.figures = app, figures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        await answered(self.app, scope, receive, send,
                       lambda status, seconds: self.figures.observe(scope, status, seconds))
