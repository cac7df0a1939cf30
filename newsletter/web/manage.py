"""``/manage/{token}``: "Manage your subscription", linked from every edition's footer and the
welcome mail.

The token is signed like the unsubscribe token (purpose ``manage``, no expiry); one that is
malformed, altered or for another purpose, or names nobody, gets 404, saying nothing of whom.
``GET`` shows the reader's name form and an Unsubscribe button and changes nothing (link
scanners fetch every link); ``POST`` (with the page's CSRF token, as the unsubscribe and
confirm pages) performs one ``action``: ``name`` (``audience.profile.rename``, validated like
every name) or ``unsubscribe`` (``audience.changes``, method ``page``). Every answer is
``no-store`` and ``no-referrer``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..audience import profile, signup
from ..audience.changes import Unsubscribe, UnsubscribeMethod
from ..audience.model import SubscriberStatus
from ..audience.tokens import BadToken, read_token
from ..errors import SubscriberError
from . import security
from .common import consent, csrf_for, csrf_ok, forbidden, form, in_thread, message, web
from .pages import mask_email

MAX_NAME_FIELD = 1000  # characters read of the posted name; clean_name refuses past its limit


def _subscriber_id(request: Request) -> int | None:
    try:
        return read_token(web(request).keys, "manage", request.path_params["token"])
    except BadToken:
        return None


def _nobody(request: Request) -> Response:
    return message(request, 404, "This link does not work",
                   "It does not belong to any subscription.", token_page=True)


async def page(request: Request) -> Response:
    subscriber_id = _subscriber_id(request)
    if subscriber_id is None:
        return _nobody(request)
    standing = await in_thread(signup.standing, request.app.state.engine, subscriber_id)
    if standing is None:
        return _nobody(request)
    return _show(request, standing, outcome="")


async def act(request: Request) -> Response:
    subscriber_id = _subscriber_id(request)
    if subscriber_id is None:
        return _nobody(request)
    fields = await form(request)
    if not csrf_ok(request, fields):
        return forbidden(request)
    app, now = request.app.state, web(request).now(request)
    action = fields.get("action")
    if action == "name":
        try:
            changed = await in_thread(profile.rename, app.engine, subscriber_id,
                                      fields.get("name", "")[:MAX_NAME_FIELD] or None,
                                      consent(request), now)
        except SubscriberError as exc:
            return await _again(request, subscriber_id, f"Please check the name ({exc}).")
        if changed is None:
            return _nobody(request)
        outcome = "renamed" if changed else "unchanged"
    elif action == "unsubscribe":
        change = await app.unsubscribes.submit(Unsubscribe(
            subscriber_id, UnsubscribeMethod.PAGE, consent(request), now))
        if change is None:
            return _nobody(request)
        outcome = "unsubscribed"
    else:
        return message(request, 400, "This form does not work",
                       "Go back, reload the page and press the button again.", token_page=True)
    standing = await in_thread(signup.standing, app.engine, subscriber_id)
    if standing is None:  # erased between the two
        return _nobody(request)
    return _show(request, standing, outcome=outcome)


async def _again(request: Request, subscriber_id: int, error: str) -> Response:
    standing = await in_thread(signup.standing, request.app.state.engine, subscriber_id)
    if standing is None:
        return _nobody(request)
    return _show(request, standing, outcome="", error=error, status=422)


def _show(request: Request, standing: signup.Standing, *, outcome: str, error: str = "",
          status: int = 200) -> Response:
    receiving = standing.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)
    return web(request).pages.render(
        "manage.html.j2", status=status, headers=dict(security.NO_STORE), outcome=outcome,
        error=error, receiving=receiving, address=mask_email(standing.email),
        name=standing.name or "", csrf=csrf_for(request),
        action=web(request).pages.root + request.url.path)
