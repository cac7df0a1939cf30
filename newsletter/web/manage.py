"""``/manage/{token}``: "Manage your subscription", linked from every edition's footer and the
welcome mail.

The token is signed like the unsubscribe token (purpose ``manage``, no expiry); one that is
malformed, altered or for another purpose, or names nobody, gets 404, saying nothing of whom.
``GET`` shows the reader's name form, the address form, a "Send me my data" button and an
Unsubscribe button, and changes nothing (link scanners fetch every link); ``POST`` (with the
page's CSRF token, as the unsubscribe and confirm pages) performs one ``action``: ``name``
(``audience.profile.rename``, validated like every name), ``address`` (a valid new address
gets a mail with a link, ``delivery.address_change``; nothing changes until it is used, and
the answer is the same whoever the address is), ``data`` (a mail to the subscriber's address
with a one-time download link, ``delivery.data_request``) or ``unsubscribe``
(``audience.changes``, method ``page``). Every answer is ``no-store`` and ``no-referrer``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..audience import profile, signup
from ..audience.addresses import parse_address
from ..audience.changes import Unsubscribe, UnsubscribeMethod
from ..audience.model import SubscriberStatus
from ..audience.tokens import BadToken, read_token
from ..delivery import address_change, data_request
from ..errors import SubscriberError
from . import security
from .common import consent, csrf_for, csrf_ok, forbidden, form, in_thread, message, web
from .pages import display_address, mask_email

MAX_NAME_FIELD = 1000  # characters read of the posted name; clean_name refuses past its limit
MAX_EMAIL = 320        # and of the posted address, the most an address can be


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
    if action == "address":
        return await _move(request, subscriber_id, fields.get("email", "")[:MAX_EMAIL])
    if action == "data":
        if not await in_thread(data_request.request, app.engine, subscriber_id, now):
            return _nobody(request)
        app.outbox.wake()
        return await _answer(request, subscriber_id, "", outcome="data_asked", status=200)
    if action == "name":
        try:
            changed = await in_thread(profile.rename, app.engine, subscriber_id,
                                      fields.get("name", "")[:MAX_NAME_FIELD] or None,
                                      consent(request), now)
        except SubscriberError as exc:
            return await _answer(request, subscriber_id, f"Please check the name ({exc}).")
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


async def _move(request: Request, subscriber_id: int, typed: str) -> Response:
    """The address form: a mail to a valid new address. The answer says only that a mail is
    on its way, whether or not the address is on the list (the link's page judges that)."""
    app = request.app.state
    try:
        address = parse_address(typed)
    except SubscriberError as exc:
        return await _answer(request, subscriber_id, f"Please check the address ({exc}).",
                            new_email=typed)
    outcome = await in_thread(address_change.request, app.engine, subscriber_id, address,
                              web(request).now(request))
    if outcome is address_change.Outcome.NOBODY:
        return _nobody(request)
    if outcome is address_change.Outcome.SAME:
        return await _answer(request, subscriber_id, "That is already your address.",
                            new_email=typed)
    if outcome is address_change.Outcome.STOPPED:
        return await _answer(request, subscriber_id, "The address can be changed only while "
                            "the subscription receives mail.", status=409)
    app.outbox.wake()
    return await _answer(request, subscriber_id, "", outcome="address_asked", status=200,
                        new_email=display_address(address.email))


async def _answer(request: Request, subscriber_id: int, error: str, *, outcome: str = "",
                 status: int = 422, new_email: str = "") -> Response:
    standing = await in_thread(signup.standing, request.app.state.engine, subscriber_id)
    if standing is None:
        return _nobody(request)
    return _show(request, standing, outcome=outcome, error=error, status=status,
                 new_email=new_email)


def _show(request: Request, standing: signup.Standing, *, outcome: str, error: str = "",
          status: int = 200, new_email: str = "") -> Response:
    receiving = standing.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)
    return web(request).pages.render(
        "manage.html.j2", status=status, headers=dict(security.NO_STORE), outcome=outcome,
        error=error, receiving=receiving, address=mask_email(standing.email),
        name=standing.name or "", new_email=new_email, csrf=csrf_for(request),
        action=web(request).pages.root + request.url.path)
