"""``/unsubscribe/{token}``: the link in every message's List-Unsubscribe header and footer.

* ``POST`` with ``List-Unsubscribe=One-Click`` (urlencoded or multipart) is RFC 8058's
  one-click request from a mailbox provider: no cookie, no CSRF token, no confirmation, no
  redirect; the subscriber is unsubscribed at once and the answer is 200.
* ``GET`` never changes anything (link scanners fetch every link): it shows the newsletter,
  the address partly masked, and an Unsubscribe button. That form posts to the same URL with
  ``action=unsubscribe`` and a CSRF token; ``action=resubscribe`` undoes an unsubscribe the
  person made themselves.

A token that is malformed, altered or for another purpose gets one plain 400 page; a genuine
token for an id never handed out gets 404; an erased subscriber's token says "not subscribed".

While the database is locked by someone else (an import, a migration), a POST waits at most
``LOCK_WAIT`` seconds, then answers 503 with ``Retry-After``: nothing was recorded, and mail
clients send a one-click request again on a 503. It is never answered 200 unrecorded, nor 500.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from ..audience import changes, signup
from ..audience.changes import UnsubscribeMethod
from ..audience.model import SubscriberStatus
from ..audience.tokens import BadToken, read_token
from ..feedback._sql import error_line
from ..store.db import DatabaseError
from . import security
from .common import (
    bad_link,
    consent,
    csrf_for,
    csrf_ok,
    forbidden,
    form,
    in_thread,
    try_again,
    web,
)
from .pages import mask_email

log = logging.getLogger(__name__)

RESUBSCRIBE_TEXT = "Resubscribed with the button on the unsubscribe page."
LOCK_WAIT = 1.0    # seconds a one-click waits for another writer's lock before the 503


def _subscriber_id(request: Request) -> int | None:
    try:
        return read_token(web(request).keys, "unsubscribe", request.path_params["token"])
    except BadToken:
        return None


async def page(request: Request) -> Response:
    subscriber_id = _subscriber_id(request)
    if subscriber_id is None:
        return bad_link(request)
    engine = request.app.state.engine
    standing = await in_thread(signup.standing, engine, subscriber_id)
    if standing is None:
        return await _gone(request, subscriber_id)
    return _show(request, standing, outcome="")


async def act(request: Request) -> Response:
    subscriber_id = _subscriber_id(request)
    if subscriber_id is None:
        return bad_link(request)
    fields = await form(request)
    try:
        return await _act(request, subscriber_id, fields)
    except (DatabaseError, sa.exc.SQLAlchemyError) as exc:
        log.warning("unsubscribe not recorded, asked to try again: %s", error_line(exc))
        return try_again(request)


async def _act(request: Request, subscriber_id: int, fields: dict[str, str]) -> Response:
    engine, now = request.app.state.engine, web(request).now(request)
    if fields.get("List-Unsubscribe") == "One-Click":
        change = await request.app.state.unsubscribes.submit(changes.Unsubscribe(
            subscriber_id, UnsubscribeMethod.ONE_CLICK, consent(request), now))
        if change is None:
            return await _gone(request, subscriber_id)
        # A mailbox provider sent this, not a browser: a fixed answer, no further reads.
        return web(request).pages.render_fixed(
            "unsubscribe.html.j2", headers=dict(security.NO_STORE), state="unsubscribed",
            outcome="unsubscribed" if change.changed else "already", address="", csrf="",
            action="", may_resubscribe=False)
    if not csrf_ok(request, fields):
        return forbidden(request)
    action = fields.get("action")
    if action == "unsubscribe":
        change = await request.app.state.unsubscribes.submit(changes.Unsubscribe(
            subscriber_id, UnsubscribeMethod.PAGE, consent(request), now))
        return await _after(request, subscriber_id, change, "unsubscribed")
    if action == "resubscribe":
        change = await in_thread(changes.resubscribe, engine, subscriber_id,
                                 consent(request, RESUBSCRIBE_TEXT), now)
        return await _after(request, subscriber_id, change, "resubscribed")
    return bad_link(request)


async def _after(request: Request, subscriber_id: int, change: changes.Change | None,
                 done: str) -> Response:
    if change is None:
        return await _gone(request, subscriber_id)
    standing = await in_thread(signup.standing, request.app.state.engine, subscriber_id)
    if standing is None:  # erased between the two reads
        return await _gone(request, subscriber_id)
    return _show(request, standing, outcome=done if change.changed else "already")


def _show(request: Request, standing: signup.Standing, outcome: str) -> Response:
    """One page for every state: what is true now, and the one button that makes sense."""
    status = standing.status
    if status in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING):
        state = "subscribed"
    elif status == SubscriberStatus.UNSUBSCRIBED:
        state = "unsubscribed"
    else:  # bounced or complained: nothing to offer
        state = "stopped"
    return web(request).pages.render(
        "unsubscribe.html.j2", headers=dict(security.NO_STORE), state=state, outcome=outcome,
        address=mask_email(standing.email), csrf=csrf_for(request),
        action=web(request).pages.root + request.url.path, may_resubscribe=standing.may_resubscribe)


async def _gone(request: Request, subscriber_id: int) -> Response:
    erased = await in_thread(signup.was_erased, request.app.state.engine, subscriber_id)
    if not erased:
        return web(request).pages.render(
            "message.html.j2", status=404, headers=dict(security.NO_STORE),
            title="This link does not work", lines=["It does not belong to any subscription."])
    return web(request).pages.render(
        "unsubscribe.html.j2", headers=dict(security.NO_STORE), state="erased", outcome="",
        address="", csrf="", action="", may_resubscribe=False)
