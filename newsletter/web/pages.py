"""The web app's pages: Jinja2 templates under ``<templates_dir>/web/`` (else the package's,
file by file: ``edition.templates``), autoescaped.

Every page extends ``base.html.j2`` (the newsletter's look: the email's fonts and colours)
and sees ``newsletter`` (name, base_url, postal_address, archive). The stylesheet and the
proof-of-work script are files in the same folder, served from memory by ``static``.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from urllib.parse import urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..config import Config
from ..edition.templates import WEB, read_file, template_loader

STATIC = {"site.css": "text/css; charset=utf-8", "altcha.js": "text/javascript; charset=utf-8"}


class Pages:
    def __init__(self, config: Config):
        self.loader = template_loader(config.templates_dir, WEB)
        self.env = jinja2.Environment(
            loader=self.loader,
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # read once: no stat per request (restart to pick up edits)
        )
        # A base_url with a path (https://example.com/news) is served by a proxy that strips
        # the path; the pages' own links keep it.
        self.root = urlsplit(config.base_url).path.rstrip("/")
        self.env.globals["newsletter"] = SimpleNamespace(
            name=config.name,
            base_url=config.base_url.rstrip("/"),
            root=self.root,
            postal_address=config.postal_address,
            archive=config.archive,
        )
        self._static: dict[str, bytes] = {}
        self._fixed: dict[tuple, str] = {}

    def render(self, template: str, *, status: int = 200, headers: dict | None = None,
               **context) -> HTMLResponse:
        body = self.env.get_template(template).render(context)
        return HTMLResponse(body, status_code=status, headers=headers)

    def render_fixed(self, template: str, *, headers: dict | None = None,
                     **context) -> HTMLResponse:
        """``render`` for a page whose context never varies per request (the answer to a
        one-click unsubscribe): rendered once, then served from memory."""
        key = (template, *sorted(context.items()))
        body = self._fixed.get(key)
        if body is None:
            body = self._fixed[key] = self.env.get_template(template).render(context)
        return HTMLResponse(body, headers=headers)

    def text(self, template: str, **context) -> str:
        return self.env.get_template(template).render(context)

    def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return self.render("message.html.j2", status=404, title="Not found",
                               lines=["There is no page at this address."])
        if name not in self._static:
            self._static[name] = read_file(self.loader, name)[0].encode("utf-8")
        return Response(self._static[name], media_type=STATIC[name],
                        headers={"Cache-Control": "public, max-age=3600"})


def display_address(email: str) -> str:
    """The address as its owner writes it: browsers send internationalized domains in their
    ASCII form (xn--), people read them in Unicode."""
    local, at, domain = email.rpartition("@")
    with contextlib.suppress(UnicodeError):
        domain = domain.encode("ascii").decode("idna")
    return f"{local}{at}{domain}"


def mask_email(email: str) -> str:
    """``josé@bücher.example`` -> ``j•••@b•••.example``: recognisable to its owner, of little
    use to anyone looking over a shoulder or at a forwarded link."""
    local, _, domain = display_address(email).rpartition("@")
    if not local:
        return "•••"
    name, dot, tld = domain.rpartition(".")
    masked_domain = f"{name[:1]}•••{dot}{tld}" if dot else f"{domain[:1]}•••"
    return f"{local[:1]}•••@{masked_domain}"
