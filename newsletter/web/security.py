"""The web app's defences in one place: response headers, CSRF tokens, proxies, body limit.

* Every response gets a strict Content-Security-Policy (no scripts but our own file, no
  framing), ``Referrer-Policy: no-referrer`` (a token in a URL never leaks to another site),
  ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, a ``Permissions-Policy``
  that turns off every browser feature a page could ask for, and, when ``base_url`` is
  ``https://``, ``Strict-Transport-Security``. A route may set its own policy (the archive's
  pages need inline styles; the embeddable form may be framed); the frame header then follows
  that policy's ``frame-ancestors``.
* Nothing is built from the request's ``Host`` (nor ``X-Forwarded-Host``), which the client
  writes: absolute URLs come from ``base_url``, a form's ``Origin`` is compared with it alone.
* CSRF: the page forms carry a token signed with the secret key for that form's path and
  its issue time, and a cross-site ``Origin`` or ``Sec-Fetch-Site`` is refused. No session
  or cookie is needed (RFC 8058 forbids both on the one-click POST, which is exempt).
* Proxies: only a peer in ``trusted_proxies`` may set the client address and scheme
  (``X-Forwarded-For``, ``-Proto``); the client is the right-most address in the chain that
  is not itself a trusted proxy. An IPv4 client on a dual-stack socket (``::ffff:a.b.c.d``)
  is written as IPv4, so it is one client, not a member of one shared IPv6 /64.
* Bodies are capped at ``MAX_BODY`` bytes (Starlette answers 413 beyond it).
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 64 * 1024
CSRF_MAX_AGE = timedelta(days=1)
CLOCK_SKEW = timedelta(seconds=5)  # a token "from the future" by this much is still ours

DEFAULT_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The archive serves the email's own HTML: inline styles (and remote images) but no script.
ARCHIVE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The embeddable sign-up form may be framed by any site.
EMBED_CSP = DEFAULT_CSP.replace("frame-ancestors 'none'", "frame-ancestors *")
# Token pages: never stored by a cache or a browser's history, never indexed.
NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}

# No page needs any of these; an injected script or a framing site gets none of them either.
PERMISSIONS_POLICY = ", ".join(f"{feature}=()" for feature in (
    "accelerometer", "autoplay", "bluetooth", "browsing-topics", "camera", "display-capture",
    "geolocation", "gyroscope", "hid", "identity-credentials-get", "interest-cohort",
    "magnetometer", "microphone", "midi", "payment", "publickey-credentials-get", "serial",
    "usb", "xr-spatial-tracking"))
# Without includeSubDomains: the publisher's other subdomains (an old blog, an intranet
# name under the same domain) may still be plain http, and the header would lock browsers
# out of them for a year. Nor preload, which cannot be undone quickly.
HSTS = "max-age=31536000"

_STATIC_HEADERS = [
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"permissions-policy", PERMISSIONS_POLICY.encode("ascii")),
]


class SecurityHeaders:
    """Pure ASGI (no per-request task or copy): adds the headers as the response starts.
    ``base_url``: HSTS only when it is ``https://`` (the proxy in front speaks TLS)."""

    def __init__(self, app: ASGIApp, base_url: str = ""):
        self.app = app
        self.headers = list(_STATIC_HEADERS)
        if urlsplit(base_url).scheme == "https":
            self.headers.append((b"strict-transport-security", HSTS.encode("ascii")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.raw.extend(self.headers)
                csp = headers.get("content-security-policy")
                if csp is None:
                    headers["Content-Security-Policy"] = csp = DEFAULT_CSP
                if "frame-ancestors *" not in csp:
                    headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- CSRF -------------------------------------------------------------------------------------


def _mac(key: str, purpose: str, text: str) -> str:
    digest = hmac.digest(key.encode("utf-8"), f"{purpose}:{text}".encode(), "sha256")[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(key: str, purpose: str, now: datetime) -> str:
    """``<issue time, hex seconds>.<HMAC of purpose and time>``: a token that proves this
    server issued it, when, and for what."""
    stamp = f"{int(now.timestamp()):x}"
    return f"{stamp}.{_mac(key, purpose, stamp)}"


def issued_at(keys: Iterable[str], purpose: str, token: str) -> datetime | None:
    """When a token from ``sign`` was issued, or None when it is not genuine."""
    stamp, dot, mac = (token or "").partition(".")
    if not dot or not 0 < len(stamp) <= 12 or len(mac) != 22:
        return None
    try:
        seconds = int(stamp, 16)
    except ValueError:
        return None
    if not any(hmac.compare_digest(mac, _mac(k, purpose, stamp)) for k in keys if k):
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def derived_key(key: str, purpose: str) -> str:
    """A key of its own for ``purpose``, so no two uses of the secret key ever share one."""
    return hmac.digest(key.encode("utf-8"), f"derive:{purpose}".encode(), "sha256").hex()


def csrf_token(key: str, path: str, now: datetime) -> str:
    return sign(key, f"csrf:{path}", now)


def csrf_ok(request: Request, keys: Sequence[str], token: str, now: datetime,
            public_origin: str) -> bool:
    """The form was served by us, for this path, within a day, and posted from our origin."""
    if not same_origin(request, public_origin):
        return False
    issued = issued_at(keys, f"csrf:{request.url.path}", token)
    return issued is not None and -CLOCK_SKEW <= now - issued <= CSRF_MAX_AGE


def same_origin(request: Request, public_origin: str) -> bool:
    """Browsers say where a form post comes from; a cross-site one is refused. Ours is
    ``base_url``'s origin, never one made of the request's Host (a rebound DNS name would
    send its own Host and Origin, and match)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and site == "same-origin"):
        return True
    return origin == public_origin


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


# -- proxies ----------------------------------------------------------------------------------


class TrustedProxies:
    """Believe X-Forwarded-For/-Proto only from peers in ``networks``; X-Forwarded-Host from
    nobody (``base_url`` says where we are). Every client address is made plain: IPv4-mapped
    IPv6 as IPv4."""

    def __init__(self, app: ASGIApp, networks: Iterable[str]):
        self.app = app
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(plain_ip(address))
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("client"):
            peer, port = scope["client"]
            if self.networks and self.trusted(peer):
                scope = self._rewrite(scope)
            elif ":" in peer:  # IPv6, maybe an IPv4 client on a dual-stack socket
                scope = {**scope, "client": (plain_ip(peer), port)}
        await self.app(scope, receive, send)

    def _rewrite(self, scope: Scope) -> Scope:
        headers = dict(scope["headers"])
        scope = dict(scope)
        chain = [a.strip() for a in headers.get(b"x-forwarded-for", b"").decode("latin-1")
                 .split(",") if a.strip()]
        client = next((a for a in reversed(chain) if not self.trusted(a)), None)
        if client is None and chain:
            client = chain[0]
        if client is not None and _is_ip(client):
            scope["client"] = (plain_ip(client), 0)
        else:
            scope["client"] = (plain_ip(scope["client"][0]), scope["client"][1])
        proto = headers.get(b"x-forwarded-proto", b"").decode("latin-1").split(",")[-1].strip()
        if proto in ("http", "https"):
            scope["scheme"] = proto
        return scope


def plain_ip(address: str) -> str:
    """``::ffff:198.51.100.7`` -> ``198.51.100.7``: an IPv4 client seen through a dual-stack
    socket or proxy is that IPv4 address. Anything else is returned as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped) if mapped is not None else address


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
