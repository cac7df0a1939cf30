"""``/address/{token}``: the link in an address change's mail, sent to the new address.

The token names the outbox row that mailed it (purpose ``address``) and expires
``confirm_max_age`` after the change was asked for. ``GET`` shows a "Confirm your new address"
button and changes nothing (mail scanners follow links); ``POST`` (with the page's CSRF token)
makes the address the subscriber's, uses the link up and queues a notice to the old address
(``delivery.address_change``). An address that is another subscriber's, or erased on request,
is refused with the same words either way, and nothing changes. A token that is not genuine,
or names no link, gets 404; an expired or used one 410 and a page that says so. Every answer
is ``no-store`` and ``no-referrer``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..delivery import address_change
from ..delivery.address_change import Outcome
from . import security
from .common import consent, csrf_for, csrf_ok, expiring_token, forbidden, form, in_thread, web
from .pages import display_address

# The page each outcome of the button shows, and its status.
_AFTER = {
    Outcome.CHANGED: ("changed", 200),
    Outcome.SAME: ("changed", 200),   # the address is the new one already
    Outcome.TAKEN: ("taken", 409),
    Outcome.STOPPED: ("stopped", 409),
    Outcome.USED: ("used", 410),
    Outcome.NOBODY: ("invalid", 404),
}


async def page(request: Request) -> Response:
    row_id, expired = expiring_token(request, "address")
    if row_id is None:
        return _render(request, "invalid", status=404)
    if expired:
        return _render(request, "expired", status=410)
    asked = await in_thread(address_change.asked, request.app.state.engine, row_id)
    if asked is None:
        return _render(request, "invalid", status=404)
    if asked.used:
        return _render(request, "used", status=410)
    return _render(request, "ask", display_address(asked.new_email))


async def act(request: Request) -> Response:
    row_id, expired = expiring_token(request, "address")
    if row_id is None:
        return _render(request, "invalid", status=404)
    fields = await form(request)
    if not csrf_ok(request, fields):
        return forbidden(request)
    if expired:
        return _render(request, "expired", status=410)
    if fields.get("action") != "confirm":
        return _render(request, "invalid", status=400)
    app = request.app.state
    outcome = await in_thread(address_change.confirm, app.engine, row_id, consent(request),
                              web(request).now(request))
    if outcome is Outcome.CHANGED:
        app.outbox.wake()  # the old address's notice
    state, status = _AFTER[outcome]
    asked = await in_thread(address_change.asked, app.engine, row_id)
    return _render(request, state, display_address(asked.new_email) if asked else "",
                   status=status)


def _render(request: Request, state: str, address: str = "", status: int = 200) -> Response:
    return web(request).pages.render(
        "address.html.j2", status=status, headers=dict(security.NO_STORE), state=state,
        address=address, csrf=csrf_for(request),
        action=web(request).pages.root + request.url.path)
