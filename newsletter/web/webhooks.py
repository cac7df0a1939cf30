"""``POST /webhooks/{provider}``: verify, parse, store, apply; answer 2xx only once stored.

Before a byte of the body is read, the headers are judged: a declared ``Content-Length`` over
the provider's cap (``PROVIDERS[provider].max_body``, the most that provider really sends) is
a 413, and the provider's header-only precheck refuses an unconfigured provider, wrong Basic
credentials or a missing signature header (``feedback.webhooks.inbound``). At most
``MAX_READING`` bodies are read at once: past that the answer is 503 with ``Retry-After`` at
once, never a queue. The body is counted as it arrives and refused (413) the moment it passes
the cap, whatever ``Content-Length`` said; a client that goes away mid-body gets a 400, and
its slot and bytes are let go.

The raw body is verified before anything reads it; a refused request gets the provider's 4xx
(Mailgun 406, the only answer that stops its retries; Postmark 401 with a Basic challenge) and
changes nothing. A provider without its secret configured is refused the same way: unsigned
events are never taken. Verified events are stored, once each, and their effects applied on
the writer thread (``feedback.intake``; requests arriving together share one transaction);
only then is the answer 200. A database failure answers 503, so the provider retries later,
and a retried event is stored once. ``HEAD`` answers 200 for a provider we know (some check
the URL that way) and does nothing else.

The app keeps ``config``, ``engine``, ``clock`` and ``http_transport`` on ``app.state``; the
verifier (which caches SNS certificates), the writer and the bound on bodies being read are
made on first use and kept there too; ``close`` releases the verifier and the writer. Logs
name the provider and counts, never a secret, an address or a payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import fields

import sqlalchemy as sa
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..errors import ConfigError
from ..feedback._sql import error_line
from ..feedback.events import ReplayedRequest, WebhookRejected, WebhookUnavailable
from ..feedback.intake import Arrival, Intake, Rules, take_in_many
from ..feedback.replay_store import DatabaseReplayGuard, DeferredReplay
from ..feedback.webhooks.inbound import PROVIDERS, Inbound, WebhookSettings
from ..store.db import DatabaseError
from .group_commit import GroupCommit

log = logging.getLogger(__name__)
# The route's own ceiling (``web.app`` gives it to Starlette): the largest provider's cap.
MAX_BODY = max(webhook.max_body for webhook in PROVIDERS.values())
# Bodies read at once, all providers together: at most this many caps of memory (32 MiB),
# while a burst of real deliveries (a few per provider) never comes near it.
MAX_READING = 32
RETRY_AFTER = "5"  # seconds, when every reading slot is taken
_STATE_KEY = "webhook_inbound"
_COMMITS_KEY = "webhook_commits"
_READING_KEY = "webhook_reading"


class BodyTooLarge(Exception):
    pass


async def receive(request: Request) -> Response:
    provider = request.path_params.get("provider", "")
    if provider not in PROVIDERS:
        return PlainTextResponse("no webhook for this provider\n", status_code=404)
    if request.method == "HEAD":
        return Response(status_code=200)
    if request.method != "POST":
        return PlainTextResponse("use POST\n", status_code=405, headers={"Allow": "POST, HEAD"})
    body = await _body_or_refusal(request, provider)
    if isinstance(body, Response):
        return body
    state = request.app.state
    replay = DeferredReplay()
    try:
        rules = Rules.from_config(state.config)
        received = await inbound_for(request.app).receive(provider, body, request.headers,
                                                          replay=replay)
    except WebhookRejected as exc:
        return _refused(provider, exc)
    except WebhookUnavailable as exc:
        log.warning("webhook %s: %s; asked the provider to retry", provider, exc.reason)
        return PlainTextResponse("temporarily unavailable\n", status_code=503)
    except ConfigError as exc:
        return _misconfigured(provider, exc)
    if received.note:
        log.info("webhook %s: %s", provider, received.note)
    arrival = Arrival(received.events, state.clock(), replay)
    try:
        intake = await _commits(request.app, rules).submit(arrival)
    except ReplayedRequest as exc:
        return _refused(provider, exc)
    except (sa.exc.SQLAlchemyError, DatabaseError) as exc:
        log.error("webhook %s: events not stored, asked the provider to retry: %s", provider,
                  error_line(exc))
        return PlainTextResponse("temporarily unavailable\n", status_code=503)
    log.info("webhook %s: %s", provider, intake.summary())
    return JSONResponse({"events": intake.events, "new": intake.new,
                         "duplicates": intake.duplicates})


async def _body_or_refusal(request: Request, provider: str) -> bytes | Response:
    """The body, or the answer refusing it: from the headers alone where they decide, else
    while it arrives; read only when one of the ``MAX_READING`` slots is free."""
    refusal = _judge_headers(request, provider)
    if refusal is not None:
        return refusal
    limit = PROVIDERS[provider].max_body
    reading = _reading(request.app)
    if reading.locked():
        log.warning("webhook %s: %d bodies already being read; asked to retry", provider,
                    MAX_READING)
        return PlainTextResponse("busy, retry later\n", status_code=503,
                                 headers={"Retry-After": RETRY_AFTER})
    try:
        async with reading:
            return await read_body(request, limit)
    except BodyTooLarge:
        return _too_large(provider, limit)
    except ClientDisconnect:
        return Response(status_code=400)


def _judge_headers(request: Request, provider: str) -> Response | None:
    """The answer the headers alone decide (a declared size over the cap, the provider's
    precheck), or None: then the body may be read."""
    limit = PROVIDERS[provider].max_body
    if _declared_over(request, limit):
        return _too_large(provider, limit)
    try:
        inbound_for(request.app).precheck(provider, request.headers)
    except WebhookRejected as exc:
        return _refused(provider, exc)
    except ConfigError as exc:
        return _misconfigured(provider, exc)
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed ``limit`` bytes: by its declared
    length, or by what has arrived (a chunked body, or one longer than it said)."""
    if _declared_over(request, limit):
        raise BodyTooLarge
    chunks, size = [], 0
    async with contextlib.aclosing(request.stream()) as stream:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
    return b"".join(chunks)


def _declared_over(request: Request, limit: int) -> bool:
    declared = request.headers.get("content-length", "")
    return declared.isascii() and declared.isdigit() and int(declared) > limit


def _reading(app) -> asyncio.Semaphore:
    """The app's bound on bodies being read at once. Only ever taken when free (``receive``
    looks first), so nobody waits on it and it belongs to no event loop in particular."""
    reading = getattr(app.state, _READING_KEY, None)
    if reading is None:
        reading = asyncio.Semaphore(MAX_READING)
        setattr(app.state, _READING_KEY, reading)
    return reading


def inbound_for(app) -> Inbound:
    """The app's verifier, made from its config on first use."""
    inbound = getattr(app.state, _STATE_KEY, None)
    if inbound is None:
        state = app.state
        config = state.config
        settings = WebhookSettings(**{f.name: getattr(config, f.name)
                                      for f in fields(WebhookSettings)})
        inbound = Inbound(settings, replay=DatabaseReplayGuard(state.engine, state.clock),
                          transport=getattr(state, "http_transport", None), clock=state.clock)
        setattr(app.state, _STATE_KEY, inbound)
    return inbound


def _commits(app, rules: Rules) -> GroupCommit:
    """The app's writer: requests arriving while a transaction is written are stored together
    in the next one, on one thread (one commit for a burst; no writers queueing on SQLite's
    lock). Each request still gets its own answer, and only once its transaction committed."""
    commits = getattr(app.state, _COMMITS_KEY, None)
    if commits is None:
        state = app.state
        commits = GroupCommit(functools.partial(_take_in_all, state.engine, rules, state.clock))
        setattr(app.state, _COMMITS_KEY, commits)
    return commits


def _take_in_all(engine, rules: Rules, clock, arrivals: list[Arrival]) -> list[Intake]:
    return take_in_many(engine, arrivals, rules, clock=clock)


async def close(app) -> None:
    """Release the verifier's HTTP clients and the writer's thread (the app's shutdown)."""
    inbound = getattr(app.state, _STATE_KEY, None)
    if inbound is not None:
        setattr(app.state, _STATE_KEY, None)
        await inbound.aclose()
    commits = getattr(app.state, _COMMITS_KEY, None)
    if commits is not None:
        setattr(app.state, _COMMITS_KEY, None)
        commits.close()


def _too_large(provider: str, limit: int) -> Response:
    log.warning("webhook %s refused: body over %d bytes", provider, limit)
    return PlainTextResponse("body too large\n", status_code=413)


def _misconfigured(provider: str, exc: ConfigError) -> Response:
    log.error("webhook %s cannot be verified: %s", provider, exc)
    return PlainTextResponse("webhook misconfigured\n", status_code=500)


def _refused(provider: str, exc: WebhookRejected) -> Response:
    log.warning("webhook %s refused (%d): %s", provider, exc.status, exc.reason)
    return PlainTextResponse(f"{exc.reason}\n", status_code=exc.status, headers=exc.headers)

