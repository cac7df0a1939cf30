"""What the event-log tests share: a config, a recorded send, the web app with the route.

No tests here: the helpers are imported by tests/test_events_*.py and test_webhook_route.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from starlette.applications import Starlette

from newsletter.audience.tokens import make_token
from newsletter.config import Config
from newsletter.feedback.events import Event, EventKind
from newsletter.store.db import connect
from newsletter.store.tables import deliveries, sends, subscribers

SECRET = "s" * 32
NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
CONTENT_HASH = "0123456789abcdef" * 4
WEEK = "2026-W47"
EDITION = f"{WEEK}.{CONTENT_HASH[:12]}"


def make_config(database_url: str, **keys) -> Config:
    return dataclasses.replace(Config(), **{"database_url": database_url, "secret_key": SECRET,
                                            **keys})


def add_subscribers(engine: sa.Engine, emails: list[str], status: str = "active") -> list[int]:
    """Subscribers in one insert (the list's own rules are not what these tests are about)."""
    from newsletter.audience.addresses import parse_address

    rows = [{"email": e, "email_key": parse_address(e).key, "name": f"Reader {i}",
             "status": status, "source": "test", "attributes": {}, "consented_at": NOW,
             "created_at": NOW, "updated_at": NOW} for i, e in enumerate(emails)]
    with engine.begin() as conn:
        conn.execute(subscribers.insert(), rows)
        found = dict(conn.execute(sa.select(subscribers.c.email, subscribers.c.id)).all())
    return [found[e] for e in emails]


def record_send(engine: sa.Engine, message_ids: dict[int, str], *, week: str = WEEK,
                provider: str = "postmark", content_hash: str = CONTENT_HASH,
                status: str = "sent", created_at: datetime = NOW) -> int:
    """A finished send in the ledger: subscriber id -> the message id the provider answered."""
    with engine.begin() as conn:
        send_id = conn.execute(sends.insert().values(
            week=week, content_hash=content_hash, subject="Subject", provider=provider,
            status="done", total=len(message_ids), created_at=created_at,
            updated_at=created_at, finished_at=created_at)).inserted_primary_key[0]
        if message_ids:
            conn.execute(deliveries.insert(), [
                {"send_id": send_id, "subscriber_id": sub, "status": status, "attempts": 1,
                 "message_id": mid, "updated_at": created_at}
                for sub, mid in message_ids.items()])
    return send_id


def our_message_id(subscriber_id: int, week: str = WEEK, content_hash: str = CONTENT_HASH):
    return f"<{week}.{subscriber_id}.{content_hash[:10]}@news.example.org>"


def token_for(subscriber_id: int, secret: str = SECRET) -> str:
    return make_token(secret, "unsubscribe", subscriber_id)


def event(kind=EventKind.BOUNCED, *, provider="postmark", event_id="e-1", recipient="",
          provider_message_id="", message_id="", metadata=None, raw=None,
          occurred_at=NOW, reason="", code="") -> Event:
    return Event(provider=provider, kind=kind, event_id=event_id, recipient=recipient,
                 occurred_at=occurred_at, reason=reason, code=code,
                 provider_message_id=provider_message_id, message_id=message_id,
                 metadata=metadata or {}, raw=raw if raw is not None else {"id": event_id})


def status_of(engine: sa.Engine, subscriber_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.select(subscribers.c.status)
                            .where(subscribers.c.id == subscriber_id)).scalar_one()


def stored_events(engine: sa.Engine) -> list[sa.Row]:
    from newsletter.store.tables import events

    with engine.connect() as conn:
        return conn.execute(sa.select(events).order_by(events.c.id)).all()


def webhook_app(config: Config, *, clock: Callable[[], datetime] = lambda: NOW,
                transport=None) -> Starlette:
    """The web app (``newsletter.web.app``), whose state names the route relies on."""
    from newsletter.web.app import create_app

    config = dataclasses.replace(config, base_url=config.base_url or "http://localhost:8000",
                                 from_address=config.from_address or "news@example.org")
    return create_app(config, engine=connect(config.database_url), transport=transport,
                      clock=clock)
