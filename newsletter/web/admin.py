"""``GET /admin/report/{week}``: the edition report, for whoever holds ``admin_auth``.

The route exists only when ``admin_auth`` (``user:password``) is set (``app._routes``);
without it the path is not found like any other. A request must carry those credentials as
HTTP Basic auth, compared in constant time (as Postmark's webhook credentials are); anything
else gets 401 and a Basic challenge. A week that is not a week, or was never sent, is not
found. The page is never stored by a cache, and its policy allows inline styles (the page's
and the charts') and nothing else: it has no script and loads nothing.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..errors import ContentError
from ..report.gather import NoSuchSend, edition_report
from ..report.render import to_html
from .common import in_thread, not_found

CHALLENGE = {"WWW-Authenticate": 'Basic realm="newsletter admin", charset="UTF-8"'}
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
              "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


def allows(authorization: str | None, credentials: str) -> bool:
    """Whether the Authorization header carries exactly ``credentials`` (``user:password``)."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return False
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        given = b""
    return hmac.compare_digest(given, credentials.encode("utf-8"))


async def report(request: Request) -> Response:
    config = request.app.state.config
    if not allows(request.headers.get("authorization"), config.admin_auth):
        return Response(status_code=401, headers={**CHALLENGE, **PRIVATE})
    week = request.path_params["week"]
    try:
        found = await in_thread(edition_report, config, week)
    except (ContentError, NoSuchSend):  # not a week, or a week never sent
        response = not_found(request)
        response.headers.update(PRIVATE)
        return response
    body = await in_thread(to_html, found, name=config.name,
                           templates_dir=str(config.templates_dir))
    return HTMLResponse(body, headers={**PRIVATE, "Content-Security-Policy": REPORT_CSP})
