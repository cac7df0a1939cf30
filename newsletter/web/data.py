"""``/data/{token}``: the link in the mail a reader asks for with "Send me my data".

The token names the outbox row that mailed it (purpose ``data``) and expires
``confirm_max_age`` after it was asked for. ``GET`` shows a "Download my data" button and
changes nothing (a mail scanner's fetch must not use the link up); ``POST`` (with the page's
CSRF token) answers the JSON of what ``subscribers export --person`` shows, as an attachment,
and uses the link up (``delivery.data_request``): a second POST gets 410. A token that is not
genuine, or names no link, gets 404; an expired one 410. Every answer is ``no-store`` and
``no-referrer``.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from ..delivery import data_request
from ..delivery.data_request import Link
from . import security
from .common import csrf_for, csrf_ok, expiring_token, forbidden, form, in_thread, web

FILENAME = "subscription-data.json"


async def page(request: Request) -> Response:
    row_id, expired = expiring_token(request, "data")
    if row_id is None:
        return _render(request, "invalid", status=404)
    if expired:
        return _render(request, "expired", status=410)
    state = await in_thread(data_request.state, request.app.state.engine, row_id)
    if state is None:
        return _render(request, "invalid", status=404)
    if state is Link.USED:
        return _render(request, "used", status=410)
    return _render(request, "ask")


async def act(request: Request) -> Response:
    row_id, expired = expiring_token(request, "data")
    if row_id is None:
        return _render(request, "invalid", status=404)
    fields = await form(request)
    if not csrf_ok(request, fields):
        return forbidden(request)
    if expired:
        return _render(request, "expired", status=410)
    if fields.get("action") != "download":
        return _render(request, "invalid", status=400)
    record = await in_thread(data_request.download, request.app.state.engine, row_id,
                             web(request).now(request))
    if record is None:
        return _render(request, "invalid", status=404)
    if record is Link.USED:
        return _render(request, "used", status=410)
    body = json.dumps(record, ensure_ascii=False, indent=2) + "\n"
    return Response(body.encode("utf-8"), media_type="application/json; charset=utf-8",
                    headers={**security.NO_STORE,
                             "Content-Disposition": f'attachment; filename="{FILENAME}"'})


def _render(request: Request, state: str, status: int = 200) -> Response:
    return web(request).pages.render(
        "data.html.j2", status=status, headers=dict(security.NO_STORE), state=state,
        csrf=csrf_for(request), action=web(request).pages.root + request.url.path)
