"""Sign-up with double opt-in: ``/subscribe`` (the form), ``/embed/subscribe`` (the same form,
framable by other sites), ``/api/subscribe`` (JSON, for embedding with a script).

Every entry point goes through one gate (``web.gate``) and one outcome: the answer is the same
page (or the same JSON) whether the address is new, pending, active, unsubscribed, bounced or
erased, so the form cannot be used to find out who is on the list; and behind it the same
work is done (``delivery.confirmations.request_confirmation`` records the sign-up and always
queues a row; the outbox's sender decides whether a mail goes out), so the answer's time
cannot tell either.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import json_input
from ..audience.addresses import clean_name, parse_address
from ..audience.history import ChangeMethod
from ..config import Config
from ..delivery import confirmations
from ..errors import SubscriberError
from . import security
from .common import client_ip, consent, forbidden, form, in_thread, web
from .gate import ALTCHA_FIELD, HONEYPOT, TOKEN_FIELD, Verdict
from .pages import display_address

MAX_EMAIL = 320


def consent_text(config: Config) -> str:
    """The wording the person agrees to; shown on the form and kept on the consent record."""
    return (f"Send me {config.name} by email every week. I can unsubscribe at any time "
            "with the link in every edition.")


# -- the HTML form ----------------------------------------------------------------------------


async def form_page(request: Request) -> Response:
    return _form(request, embed=False, email=request.query_params.get("email", "")[:MAX_EMAIL],
                 name=request.query_params.get("name", "")[:200])


async def embed_page(request: Request) -> Response:
    return _form(request, embed=True, email="", name="")


def _form(request: Request, *, embed: bool, email: str, name: str, error: str = "",
          status: int = 200) -> Response:
    state = web(request)
    fields = request.app.state.gate.fields()
    headers = {"Cache-Control": "no-store"}
    if embed:
        headers["Content-Security-Policy"] = security.EMBED_CSP
    return state.pages.render(
        "subscribe.html.j2", status=status, headers=headers, embed=embed, email=email,
        name=name, error=error, consent=consent_text(request.app.state.config),
        honeypot=HONEYPOT, token_field=TOKEN_FIELD, token=fields.token,
        altcha_field=ALTCHA_FIELD,
        altcha=json.dumps(fields.altcha_challenge) if fields.altcha_challenge else "")


async def submit(request: Request) -> Response:
    if not security.same_origin(request, web(request).public_origin):
        return forbidden(request)  # a browser posting our form from another site's page
    fields = await form(request)
    embed = fields.get("embed") == "1"
    email = fields.get("email", "").strip()[:MAX_EMAIL]
    verdict, error = await _handle(request, fields)
    if verdict is Verdict.EXPIRED:
        return _form(request, embed=embed, email=email, name=fields.get("name", ""),
                     error="The form had been open for a long time; please send it again.")
    if error:
        return _form(request, embed=embed, email=email, name=fields.get("name", ""),
                     error=error, status=422)
    headers = {"Cache-Control": "no-store"}
    if embed:
        headers["Content-Security-Policy"] = security.EMBED_CSP
    return web(request).pages.render("subscribed.html.j2", headers=headers, embed=embed,
                                     email=display_address(email))


# -- the JSON API -----------------------------------------------------------------------------

# Other sites' scripts may call the API: it uses no cookie or credential, so any origin may.
CORS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}


async def api_preflight(request: Request) -> Response:
    return Response(status_code=204, headers={
        **CORS, "Access-Control-Allow-Methods": "GET, POST",
        "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "86400"})


async def api_fields(request: Request) -> Response:
    """What a script must send back with a sign-up: a fresh form token, the honeypot's name
    (send it empty) and, with altcha on, a challenge to solve."""
    fields = request.app.state.gate.fields()
    return JSONResponse({"form_token": fields.token, "honeypot": HONEYPOT,
                         "altcha": fields.altcha_challenge}, headers=CORS)


async def api_submit(request: Request) -> Response:
    try:
        data = json_input.loads(await request.body())
    except json_input.UnreadableJSON:  # not UTF-8, not JSON, or nested absurdly deep
        data = None
    if not isinstance(data, dict):
        return JSONResponse({"error": "the body must be a JSON object"}, status_code=400,
                            headers=CORS)
    fields = {k: v for k, v in data.items() if isinstance(v, str)}
    verdict, error = await _handle(request, fields)
    if verdict is Verdict.EXPIRED:
        return JSONResponse({"error": "form_token has expired; fetch a new one"},
                            status_code=409, headers=CORS)
    if error:
        return JSONResponse({"error": error}, status_code=422, headers=CORS)
    return JSONResponse({"status": "ok", "message": _DONE}, headers=CORS)


_DONE = "If the address needs confirming, a mail with a link is on its way."


# -- shared -----------------------------------------------------------------------------------


async def _handle(request: Request, fields: dict[str, str]) -> tuple[Verdict, str]:
    """Gate, validate, record: (verdict, error for the person to fix, or '')."""
    app = request.app.state
    verdict = app.gate.check(fields, client_ip(request) or "")
    if verdict is not Verdict.PASS:
        return verdict, ""
    try:
        address = parse_address(fields.get("email", "")[:MAX_EMAIL])
    except SubscriberError as exc:
        return verdict, f"Please check the email address ({_sentence(exc)})."
    try:
        name = clean_name(fields.get("name") or None)
    except SubscriberError as exc:
        return verdict, f"Please check the name ({_sentence(exc)})."
    # Whoever the address is, the same work: the outbox's sender decides what is mailed.
    method = ChangeMethod.API if request.url.path.startswith("/api/") else ChangeMethod.WEB
    await in_thread(confirmations.request_confirmation, app.engine, address, name,
                    consent(request, consent_text(app.config)), app.clock(), method=method)
    app.outbox.wake()
    return verdict, ""


def _sentence(exc: Exception) -> str:
    return str(exc).strip().rstrip(".")
