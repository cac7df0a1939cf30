"""``POST /webhooks/{provider}``: verify, parse, store, apply; answer 2xx only once stored.

The raw body (at most ``MAX_BODY`` bytes) is verified before anything reads it
(``feedback.webhooks.inbound``); a refused request gets the provider's 4xx (Mailgun 406, the
only answer that stops its retries; Postmark 401 with a Basic challenge) and changes nothing.
A provider without its secret configured is refused the same way: unsigned events are never
taken. Verified events are stored, once each, and their effects applied on the writer thread
(``feedback.intake``; requests arriving together share one transaction); only then is the
answer 200. A database failure answers 503, so the provider retries later, and a retried
event is stored once. ``HEAD`` answers 200 for a provider we know (some check the URL that
way) and does nothing else.

The app keeps ``config``, ``engine``, ``clock`` and ``http_transport`` on ``app.state``; the
verifier (which caches SNS certificates) is made on first use and kept there too; ``close``
releases it. Logs name the provider and counts, never a secret, an address or a payload.
"""

from __future__ import annotations

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
MAX_BODY = 8 * 1024 * 1024  # SendGrid's batches are the largest, well below this
_STATE_KEY = "webhook_inbound"
_COMMITS_KEY = "webhook_commits"


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
    try:
        body = await read_body(request, MAX_BODY)
    except BodyTooLarge:
        log.warning("webhook %s refused: body over %d bytes", provider, MAX_BODY)
        return PlainTextResponse("body too large\n", status_code=413)
    except ClientDisconnect:
        return Response(status_code=400)
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
        log.error("webhook %s cannot be verified: %s", provider, exc)
        return PlainTextResponse("webhook misconfigured\n", status_code=500)
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


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


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


def _refused(provider: str, exc: WebhookRejected) -> Response:
    log.warning("webhook %s refused (%d): %s", provider, exc.status, exc.reason)
    return PlainTextResponse(f"{exc.reason}\n", status_code=exc.status, headers=exc.headers)

