"""``/confirm/{token}``: the link in the double opt-in mail.

``GET`` shows a "Confirm subscription" button and changes nothing (a mail scanner that
follows the link confirms nobody); ``POST`` (with the page's CSRF token) activates the
subscriber and records ``confirmed_at``. Links expire after ``confirm_max_age``: an expired
one offers to send a fresh mail, which goes through the same cooldown as a sign-up.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..audience import signup
from ..audience.model import SubscriberStatus
from ..audience.tokens import BadToken, ExpiredToken, read_token
from ..delivery import confirmations
from . import security
from .common import bad_link, csrf_for, csrf_ok, forbidden, form, in_thread, web
from .pages import mask_email


def _read(request: Request) -> tuple[int | None, bool]:
    """(subscriber id, expired); (None, False) for a token that is not genuine."""
    state = web(request)
    try:
        return read_token(state.keys, "confirm", request.path_params["token"],
                          max_age=request.app.state.config.confirm_max_age,
                          now=state.now(request)), False
    except ExpiredToken as exc:
        return exc.subscriber_id, True
    except BadToken:
        return None, False


async def page(request: Request) -> Response:
    subscriber_id, expired = _read(request)
    if subscriber_id is None:
        return bad_link(request)
    standing = await in_thread(signup.standing, request.app.state.engine, subscriber_id)
    return _show(request, standing, expired=expired)


async def act(request: Request) -> Response:
    subscriber_id, expired = _read(request)
    if subscriber_id is None:
        return bad_link(request)
    fields = await form(request)
    if not csrf_ok(request, fields):
        return forbidden(request)
    app = request.app.state
    action = fields.get("action")
    if action == "resend":
        if await in_thread(confirmations.resend, app.engine, subscriber_id, app.clock()):
            app.outbox.wake()
        return _render(request, "resent", "")
    if action != "confirm":
        return bad_link(request)
    if expired:
        standing = await in_thread(signup.standing, app.engine, subscriber_id)
        return _show(request, standing, expired=True)
    change = await in_thread(confirmations.confirm, app.config, app.engine, subscriber_id,
                             app.clock())
    if change is None:
        return _show(request, None, expired=False)
    if change.changed:
        app.outbox.wake()  # the welcome mail, if any
        standing = await in_thread(signup.standing, app.engine, subscriber_id)
        return _render(request, "confirmed", mask_email(standing.email) if standing else "")
    standing = await in_thread(signup.standing, app.engine, subscriber_id)
    return _show(request, standing, expired=False)


def _show(request: Request, standing: signup.Standing | None, *, expired: bool) -> Response:
    if standing is None:
        # Erased, or never ours: nothing to confirm, and nothing said about whom.
        return _render(request, "invalid", "", status=404)
    address = mask_email(standing.email)
    if standing.status == SubscriberStatus.ACTIVE:
        return _render(request, "already", address)
    if standing.status != SubscriberStatus.PENDING:
        return _render(request, "invalid", "", status=404)
    return _render(request, "expired" if expired else "ask", address)


def _render(request: Request, state: str, address: str, status: int = 200) -> Response:
    return web(request).pages.render(
        "confirm.html.j2", status=status, headers=dict(security.NO_STORE), state=state,
        address=address, csrf=csrf_for(request), action=web(request).pages.root + request.url.path)
