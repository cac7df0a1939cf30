"""The public archive: ``/archive`` (sent editions, newest first), ``/archive/{week}`` (an
edition's web version) and ``/feed.xml`` (Atom).

An edition is public once its send has started (a row in ``sends``); one not yet sent is never
shown, and ``archive = false`` turns all three routes off. The web version is rendered with
``audience="web"``: no recipient's name, address or token, a Subscribe link in place of
Unsubscribe. Pages are cached: a request costs a few ``stat`` calls to notice an edited file;
the edition is rendered again only when its files change, never per request.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from ..clock import utc_now
from ..config import Config
from ..edition.content import load_edition, parse_week
from ..edition.render import CSS_FILE, HTML_TEMPLATE, TEXT_TEMPLATE, render_edition
from ..errors import NewsletterError
from ..store.tables import sends
from . import security
from .common import in_thread, not_found, web

PUBLIC_TTL = 60.0  # seconds a week's "has been sent" is believed before asking again
CHECK_EVERY = 2.0  # seconds between looks at a cached page's files (an edit shows this soon)


@dataclass(frozen=True)
class Page:
    week: str
    fingerprint: tuple
    headline: str
    dek: str
    body: bytes
    etag: str


class Archive:
    """The cache of web versions, one per week, keyed by the files it was rendered from."""

    def __init__(self, config: Config, engine: sa.Engine,
                 clock: Callable[[], datetime] = utc_now):
        self.config = config
        self.engine = engine
        self._clock = clock
        self.renders = 0  # how many times an edition was rendered (the cache's misses)
        self._pages: dict[str, Page] = {}
        self._summaries: dict[str, tuple[tuple, tuple[str, str]]] = {}
        self._checked: dict[str, float] = {}  # week -> when its files were last looked at
        self._public: dict[str, tuple[float, datetime]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _seconds(self) -> float:
        return self._clock().timestamp()

    def sent(self) -> list[tuple[str, datetime]]:
        """(week, send start) of every edition whose send has started, newest first."""
        query = sa.select(sends.c.week, sends.c.created_at).order_by(sends.c.created_at.desc())
        with self.engine.connect() as conn:
            rows = [(r.week, r.created_at) for r in conn.execute(query)]
        expires = self._seconds() + PUBLIC_TTL
        for week, started in rows:
            self._public[week] = (expires, started)
        return rows

    def started(self, week: str) -> datetime | None:
        """When the week's send started, or None: not public."""
        cached = self._public.get(week)
        if cached and cached[0] > self._seconds():
            return cached[1]
        with self.engine.connect() as conn:
            started = conn.execute(sa.select(sends.c.created_at)
                                   .where(sends.c.week == week)).scalar()
        if started is not None:
            self._public[week] = (self._seconds() + PUBLIC_TTL, started)
        return started

    def ready(self, week: str) -> Page | None:
        """A page to serve without the database or a render: a cached page of a week known
        to be public, whose files have not changed."""
        cached = self._public.get(week)
        if cached is None or cached[0] <= self._seconds():
            return None
        return self.cached(week)

    def summary(self, week: str) -> tuple[str, str] | None:
        """(headline, dek) of the week's edition, from its files (no render); None if broken."""
        fingerprint = self._fingerprint(week)
        known = self._summaries.get(week)
        if known is not None and known[0] == fingerprint:
            return known[1]
        try:
            edition = load_edition(self.config.items_dir, week)
        except NewsletterError:
            return None
        self._summaries[week] = (fingerprint, (edition.headline, edition.dek))
        return edition.headline, edition.dek

    def cached(self, week: str) -> Page | None:
        """The page when it is cached and its files have not changed since (no render)."""
        page = self._pages.get(week)
        if page is None:
            return None
        now = self._seconds()
        if now - self._checked.get(week, 0.0) < CHECK_EVERY:
            return page
        if page.fingerprint != self._fingerprint(week):
            return None
        self._checked[week] = now
        return page

    def page(self, week: str) -> Page | None:
        """The week's web version, rendered if its files changed; None if it cannot be."""
        page = self.cached(week)
        if page is not None:
            return page
        with self._lock:
            lock = self._locks.setdefault(week, threading.Lock())
        with lock:  # many requests for a new edition at once: one render
            page = self.cached(week)
            if page is None:
                page = self._render(week)
                if page is not None:
                    self._pages[week] = page
                    self._checked[week] = self._seconds()
            return page

    def _render(self, week: str) -> Page | None:
        fingerprint = self._fingerprint(week)
        try:
            edition = load_edition(self.config.items_dir, week)
            rendered = render_edition(self.config, edition, audience="web")
        except NewsletterError:
            return None
        self.renders += 1
        body = rendered.html.fill({}).encode("utf-8")
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return Page(week, fingerprint, edition.headline, edition.dek, body, etag)

    def _fingerprint(self, week: str) -> tuple:
        folder = Path(self.config.items_dir) / week
        templates = Path(self.config.templates_dir)
        paths = sorted(folder.glob("*.md")) if folder.is_dir() else []
        paths += [templates / HTML_TEMPLATE, templates / TEXT_TEMPLATE, templates / CSS_FILE]
        out = []
        for path in paths:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            out.append((path.name, st.st_mtime_ns, st.st_size))
        return tuple(out)


# -- the routes -------------------------------------------------------------------------------


async def index(request: Request) -> Response:
    archive: Archive = request.app.state.archive
    sent = await in_thread(archive.sent)
    entries = await in_thread(_entries, archive, sent)
    return web(request).pages.render("archive.html.j2", entries=entries)


async def edition(request: Request) -> Response:
    archive: Archive = request.app.state.archive
    try:
        week = parse_week(request.path_params["week"])
    except NewsletterError:
        return not_found(request)
    # The common case (a cached page of a week known to be public) stays on the event loop.
    page = archive.ready(week)
    if page is None:
        if await in_thread(archive.started, week) is None:
            return not_found(request)
        page = await in_thread(archive.page, week)
        if page is None:
            return not_found(request)
    headers = {"ETag": page.etag, "Content-Security-Policy": security.ARCHIVE_CSP,
               "Cache-Control": "public, max-age=300"}
    if request.headers.get("if-none-match") == page.etag:
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="text/html; charset=utf-8", headers=headers)


async def feed(request: Request) -> Response:
    archive: Archive = request.app.state.archive
    sent = await in_thread(archive.sent)
    entries = await in_thread(_entries, archive, sent)
    updated = max((e["started"] for e in entries), default=datetime(1970, 1, 1).astimezone())
    body = web(request).pages.text("feed.xml.j2", entries=entries,
                                   updated=_atom_time(updated))
    return Response(body, media_type="application/atom+xml; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=300"})


def _entries(archive: Archive, sent: list[tuple[str, datetime]]) -> list[dict]:
    config = archive.config
    zone = ZoneInfo(config.timezone)
    base = config.base_url.rstrip("/")
    out = []
    for week, started in sent:
        summary = archive.summary(week)
        if summary is None:  # its folder is gone or broken: leave it out rather than fail
            continue
        local = started.astimezone(zone)
        out.append({"week": week, "headline": summary[0], "dek": summary[1],
                    "started": started, "date": f"{local.day} {local:%B %Y}",
                    "iso": local.date().isoformat(), "atom_time": _atom_time(started),
                    "url": f"{base}/archive/{week}"})
    return out


def _atom_time(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
