"""The Starlette app, assembled in one place: ``create_app(config) -> Starlette``.

Routes::

    GET  /healthz                      200 when the database answers, else 503
    GET  /unsubscribe/{token}          the unsubscribe page (changes nothing)
    POST /unsubscribe/{token}          RFC 8058 one-click, or the page's buttons
    GET  /  and  /subscribe            the sign-up form;  POST /subscribe  sends it
    GET  /embed/subscribe              the same form, framable by other sites
    GET  /api/subscribe                a form token (and challenge) for scripts
    POST /api/subscribe                JSON sign-up, through the same gate (CORS: any origin)
    GET  /confirm/{token}              "Confirm subscription" (changes nothing)
    POST /confirm/{token}              confirms (or sends a fresh link when expired)
    GET  /manage/{token}               "Manage your subscription" (changes nothing)
    POST /manage/{token}               changes the name, asks for an address change or the
                                       data, or unsubscribes (``web.manage``)
    GET  /address/{token}              "Confirm your new address" (changes nothing)
    POST /address/{token}              the address changes (``web.address``)
    GET  /data/{token}                 "Download my data" (changes nothing)
    POST /data/{token}                 the person's data as JSON, once (``web.data``)
    GET  /archive, /archive/{week}, /feed.xml    the sent editions (unless archive = false)
    GET  /static/{name}                the pages' stylesheet and proof-of-work script
    POST /webhooks/{provider}          provider events (``web.webhooks``)
    GET  /metrics                      Prometheus metrics, with a bearer token (only when
                                       ``metrics_token`` is set; ``web.metrics``)
    GET  /admin/report/{week}          the edition report, with Basic auth (only when
                                       ``admin_auth`` is set; ``web.admin``)
    GET  /r/{token}                    a counted link: 302 to where it goes (only when
                                       ``click_counts`` is on; ``web.clicks``)

Nothing else redirects: a path with a trailing slash (``/subscribe/``) is not found, and
``/r/`` sends a reader only where a token signed with the secret key says.

``request.app.state`` holds, under these names, what every endpoint (and ``web.webhooks``)
may use:

    config          the Config
    engine          the SQLAlchemy engine (schema migrated)
    clock           a callable returning an aware UTC now (tests move it)
    http_transport  an ``httpx.AsyncBaseTransport`` for outgoing HTTP, or None (the seam
                    tests inject; the confirmation mails' provider requests use it)

and, for this package: ``web`` (pages, keys), ``gate`` (the sign-up bot gate), ``archive``
(the page cache), ``outbox`` (the confirmation mails' background sender, run by the
lifespan), ``unsubscribes`` (the group commit of unsubscribe requests), ``metrics`` (the
Prometheus registry; None unless ``metrics_token`` is set) and ``clicks`` (the click counter
and its background writer, run by the lifespan).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..audience import changes
from ..clicks.counter import ClickCounter
from ..clock import utc_now
from ..config import Config
from ..store.db import DatabaseBusy, DatabaseError, connect, quick_writes
from . import (
    address,
    admin,
    archive,
    clicks,
    confirm,
    data,
    manage,
    metrics,
    subscribe,
    unsubscribe,
    webhooks,
)
from .access_log import AccessLog, loggable_path
from .archive import Archive
from .common import WebState, in_thread, message, not_found, try_again
from .gate import SignupGate
from .group_commit import GroupCommit
from .outbox import OutboxSender
from .pages import Pages
from .request_metrics import RequestMetrics
from .security import MAX_BODY, SecurityHeaders, TrustedProxies, origin_of

log = logging.getLogger("newsletter.web")


def create_app(config: Config, *, engine: sa.Engine | None = None, transport=None,
               clock: Callable[[], datetime] | None = None,
               monotonic: Callable[[], float] | None = None) -> Starlette:
    """The app for ``config``; ``engine``, ``transport`` (httpx), ``clock`` and ``monotonic``
    (the metrics cache's clock, and the click counter's) are seams."""
    engine = engine or connect(config.database_url)
    clock = clock or utc_now
    prometheus = (metrics.Metrics(config.metrics_token, engine, stall_after=config.stall_after,
                                  clock=monotonic or time.monotonic)
                  if config.metrics_token else None)
    app = _Site(
        routes=_routes(config),
        middleware=[
            Middleware(TrustedProxies, networks=config.trusted_proxies),
            Middleware(AccessLog),
            *([Middleware(RequestMetrics, figures=prometheus.requests)] if prometheus else []),
        ],
        exception_handlers={404: _not_found, 405: _not_allowed, ClientDisconnect: _client_gone,
                            DatabaseError: _database_unavailable},
        lifespan=_lifespan,
        max_body_size=MAX_BODY,
    )
    state = app.state
    state.config, state.engine, state.clock, state.http_transport = (
        config, engine, clock, transport)
    state.metrics = prometheus
    keys = list(config.verification_keys)
    state.web = WebState(Pages(config), keys, origin_of(config.base_url))
    state.gate = SignupGate(keys, clock, captcha=config.subscribe_captcha)
    state.archive = Archive(config, engine, clock)
    state.outbox = OutboxSender(state)
    quick = quick_writes(engine, unsubscribe.LOCK_WAIT)
    state.clicks = clicks.ClickWriter(ClickCounter(engine, clock=monotonic or time.monotonic))
    state.unsubscribes = GroupCommit(lambda batch: changes.unsubscribe_many(quick, batch),
                                     unavailable=(DatabaseBusy,))
    # No 307 from /subscribe/ to /subscribe: Starlette builds that Location from the request's
    # Host header, which the client writes. A path with a trailing slash is not found.
    app.router.redirect_slashes = False
    return app


class _Site(Starlette):
    """Starlette, with the security headers outside everything it adds itself, so that its
    own answers (413 for a body over the limit, 500) carry them too."""

    def build_middleware_stack(self):
        return SecurityHeaders(super().build_middleware_stack(),
                               base_url=self.state.config.base_url)


def _routes(config: Config) -> list[Route]:
    routes = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/unsubscribe/{token}", unsubscribe.page, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe.act, methods=["POST"]),
        Route("/", subscribe.form_page, methods=["GET"]),
        Route("/subscribe", subscribe.form_page, methods=["GET"]),
        Route("/subscribe", subscribe.submit, methods=["POST"]),
        Route("/embed/subscribe", subscribe.embed_page, methods=["GET"]),
        Route("/api/subscribe", subscribe.api_fields, methods=["GET"]),
        Route("/api/subscribe", subscribe.api_submit, methods=["POST"]),
        Route("/api/subscribe", subscribe.api_preflight, methods=["OPTIONS"]),
        Route("/confirm/{token}", confirm.page, methods=["GET"]),
        Route("/confirm/{token}", confirm.act, methods=["POST"]),
        Route("/manage/{token}", manage.page, methods=["GET"]),
        Route("/manage/{token}", manage.act, methods=["POST"]),
        Route("/address/{token}", address.page, methods=["GET"]),
        Route("/address/{token}", address.act, methods=["POST"]),
        Route("/data/{token}", data.page, methods=["GET"]),
        Route("/data/{token}", data.act, methods=["POST"]),
        Route("/static/{name}", _static, methods=["GET"]),
    ]
    if config.archive:
        routes += [
            Route("/archive", archive.index, methods=["GET"]),
            Route("/archive/{week}", archive.edition, methods=["GET"]),
            Route("/feed.xml", archive.feed, methods=["GET"]),
        ]
    routes.append(Route("/webhooks/{provider}", webhooks.receive, methods=["POST", "HEAD"],
                        max_body_size=webhooks.MAX_BODY))
    if config.metrics_token:  # otherwise not found, like any path the app does not have
        routes.append(Route("/metrics", metrics.endpoint, methods=["GET"]))
    if config.admin_auth:  # likewise: no admin page without its credentials
        routes.append(Route("/admin/report/{week}", admin.report, methods=["GET"]))
    if config.click_counts:  # and no redirect unless the mail's links are counted
        routes.append(Route("/r/{token}", clicks.follow, methods=["GET", "HEAD"]))
    return routes


async def healthz(request: Request) -> Response:
    try:
        await in_thread(_ping, request.app.state.engine)
    except Exception as exc:
        log.warning("healthz: database unavailable: %s", " ".join(str(exc).split())[:200])
        return PlainTextResponse("database unavailable\n", status_code=503,
                                 headers={"Cache-Control": "no-store"})
    return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})


def _ping(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


async def _static(request: Request) -> Response:
    return request.app.state.web.pages.static(request)


async def _not_found(request: Request, exc: Exception) -> Response:
    return not_found(request)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return message(request, 405, "Not allowed", "This page cannot be used that way.")


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client left mid-body, or the server cut off a body that stalled
    (``web.protocol``): nobody is there to read an answer, and it is not a fault of ours."""
    return Response(status_code=400)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """A page whose database is locked or out of reach (``store.db`` turns those driver
    errors into ``DatabaseError``s): 503 with Retry-After, never a 500. Nothing was written
    (the transaction rolled back), so asking again later is safe, and browsers, mail clients
    and providers all know to. Any other database error is a bug, and stays a 500."""
    log.warning("%s %s: database unavailable: %s", request.method,
                loggable_path(request.url.path), " ".join(str(exc).split())[:200])
    return try_again(request)


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette):
    app.state.outbox.start()
    app.state.clicks.start()
    # Everything made so far (modules, the engine, templates) lives as long as the process:
    # kept out of the garbage collector's full passes, which otherwise walk it all and stall
    # every request in flight for a tenth of a second or more.
    gc.freeze()
    try:
        yield
    finally:
        await app.state.outbox.stop()
        await app.state.clicks.stop()
        app.state.unsubscribes.close()
        await webhooks.close(app)
