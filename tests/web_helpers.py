"""What the web tests share: a config for the sample project, a clock the test moves, a
TestClient on the public origin, and the steps a person takes on the pages."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter.config import load_config
from newsletter.store.db import connect
from newsletter.store.tables import confirmations, consent_details, status_changes, subscribers
from newsletter.web.app import create_app

SECRET = "web-test-secret-0123456789abcdef"
PUBLIC = "https://news.example.com"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"


class Clock:
    """An aware UTC now that moves only when the test says so."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


def web_config(project: Path, database_url: str, **overrides):
    environ = {
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_BASE_URL": PUBLIC,
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_PROVIDER": "eml",
        "NEWSLETTER_OUTBOX_DIR": str(project / "outbox"),
    }
    environ.update({f"NEWSLETTER_{k.upper()}": str(v) for k, v in overrides.items()})
    return load_config(project / "newsletter.toml", environ=environ)


def web_client(app, **kwargs) -> TestClient:
    kwargs.setdefault("headers", {"User-Agent": USER_AGENT})
    return TestClient(app, base_url=PUBLIC, **kwargs)


def make_app(config, clock: Clock, **kwargs):
    return create_app(config, clock=clock, **kwargs)


def open_site(project: Path, database_url: str, **overrides):
    """The sample project's app on its own engine, with a clock the test moves: returns
    ``(config, engine, clock, app)``; ``overrides`` are config keys, as in ``web_config``."""
    config = web_config(project, database_url, **overrides)
    engine = connect(database_url)
    clock = Clock()
    return config, engine, clock, make_app(config, clock, engine=engine)


def field(html: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    assert match, f"no field {name!r} in the page"
    return match.group(1)


def sign_up(client: TestClient, clock: Clock, email_address: str, name: str = "",
            **extra) -> object:
    """Open the form, take a few seconds like a person, send it."""
    page = client.get("/subscribe")
    clock.advance(seconds=3)
    data = {"email": email_address, "name": name, "website": "",
            "form_token": field(page.text, "form_token"), **extra}
    return client.post("/subscribe", data=data)


def main_text(html: str) -> str:
    """The page's <main>, tags stripped, whitespace collapsed."""
    inner = html[html.index("<main"):html.index("</main>")]
    return " ".join(re.sub(r"<[^>]+>", " ", inner).split())


def row(engine: sa.Engine, email_address: str) -> dict | None:
    query = (sa.select(subscribers, consent_details)
             .select_from(subscribers.outerjoin(
                 consent_details, consent_details.c.subscriber_id == subscribers.c.id))
             .where(subscribers.c.email_key == email_address.lower()))
    with engine.connect() as conn:
        found = conn.execute(query).first()
    return dict(found._mapping) if found else None


def signed_up_from(engine: sa.Engine, email_address: str) -> str | None:
    """The client address of the address's newest sign-up, as the status history keeps it (an
    unconfirmed sign-up's consent waits there, not on the subscriber's record)."""
    h, s = status_changes.c, subscribers.c
    with engine.connect() as conn:
        return conn.execute(
            sa.select(h.ip).join_from(status_changes, subscribers, s.id == h.subscriber_id)
            .where(s.email_key == email_address.lower(), h.consent_text.is_not(None))
            .order_by(h.id.desc()).limit(1)).scalar()


def outbox_rows(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in
                conn.execute(sa.select(confirmations).order_by(confirmations.c.id))]


def read_eml(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def confirm_link(message) -> str:
    text = message.get_body(("plain",)).get_content()
    match = re.search(r"https?://\S+/confirm/\S+", text)
    assert match, text
    return match.group(0)


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC), url
    return url[len(PUBLIC):]


def newest_confirm_path(project: Path) -> str:
    """The path of the confirmation link in the newest mail of the project's outbox."""
    newest = max((project / "outbox" / "confirmations").glob("*.eml"),
                 key=lambda p: p.stat().st_mtime_ns)
    return path_of(confirm_link(read_eml(newest)))
