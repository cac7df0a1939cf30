"""What the endpoints share: the app's state, who is asking, form bodies, the plain pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..audience.changes import Consent
from ..audience.tokens import BadToken, ExpiredToken, read_token
from . import security
from .pages import Pages

MAX_FIELDS = 20


@dataclass
class WebState:
    """Everything the endpoints use that is not on ``request.app.state`` under its public
    name (config, engine, clock, http_transport): made once in ``create_app``."""

    pages: Pages
    keys: list[str]
    public_origin: str

    def now(self, request: Request) -> datetime:
        return request.app.state.clock()


def web(request: Request) -> WebState:
    return request.app.state.web


def expiring_token(request: Request, purpose: str) -> tuple[int | None, bool]:
    """The id a link's token names and whether it has expired (``confirm_max_age``);
    (None, False) for a token that is not genuine."""
    state = web(request)
    try:
        return read_token(state.keys, purpose, request.path_params["token"],
                          max_age=request.app.state.config.confirm_max_age,
                          now=state.now(request)), False
    except ExpiredToken as exc:
        return exc.subscriber_id, True
    except BadToken:
        return None, False


def consent(request: Request, text: str | None = None) -> Consent:
    return Consent(ip=client_ip(request), user_agent=request.headers.get("user-agent"),
                   text=text)


def client_ip(request: Request) -> str | None:
    # Already the real client when a trusted proxy said so, and an IPv4 client written as
    # IPv4 even when seen as ::ffff:a.b.c.d (security.TrustedProxies).
    return request.client.host if request.client else None


async def form(request: Request) -> dict[str, str]:
    """The posted fields (urlencoded or multipart; files refused), first value of each."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        # The one-click request's encoding: parsed directly, cheaper than the general parser.
        body = await request.body()
        try:
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True,
                              max_num_fields=MAX_FIELDS, errors="replace")
        except ValueError:  # more fields than any of our forms has
            return {}
        out: dict[str, str] = {}
        for key, value in pairs:
            out.setdefault(key, value)
        return out
    # Multipart (RFC 8058's preferred encoding); a malformed body is Starlette's plain 400.
    data = await request.form(max_files=0, max_fields=MAX_FIELDS)
    return {key: value for key, value in data.items() if isinstance(value, str)}


def csrf_ok(request: Request, fields: dict[str, str]) -> bool:
    state = web(request)
    return security.csrf_ok(request, state.keys, fields.get("csrf", ""), state.now(request),
                            state.public_origin)


def csrf_for(request: Request) -> str:
    state = web(request)
    return security.csrf_token(state.keys[0], request.url.path, state.now(request))


def message(request: Request, status: int, title: str, *lines: str,
            token_page: bool = False) -> Response:
    """A plain page: a heading and a few sentences (errors, outcomes)."""
    headers = dict(security.NO_STORE) if token_page else None
    return web(request).pages.render("message.html.j2", status=status, headers=headers,
                                     title=title, lines=list(lines))


RETRY_AFTER = 10  # seconds, in a 503's Retry-After


def try_again(request: Request) -> Response:
    """The database was busy and nothing was changed: 503 with Retry-After, which browsers,
    mail clients (RFC 8058's one-click) and providers all know to ask again after."""
    return web(request).pages.render(
        "message.html.j2", status=503,
        headers={**security.NO_STORE, "Retry-After": str(RETRY_AFTER)},
        title="Please try again in a moment",
        lines=["Nothing has changed yet: the newsletter is busy for a moment. Try again in "
               "a few seconds."])


def not_found(request: Request) -> Response:
    return message(request, 404, "Not found", "There is no page at this address.")


def bad_link(request: Request) -> Response:
    """The same answer for a malformed, altered or wrong-purpose token: it reveals nothing."""
    return message(request, 400, "This link does not work",
                   "It may have been cut short or changed. Copy the whole link from the mail "
                   "and try again.", token_page=True)


def forbidden(request: Request) -> Response:
    return message(request, 403, "This form has expired",
                   "Go back, reload the page and press the button again.", token_page=True)


async def in_thread(func, *args, **kwargs):
    """Blocking database work, off the event loop."""
    return await run_in_threadpool(func, *args, **kwargs)
