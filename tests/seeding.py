"""Fast test data: many subscribers in one bulk insert."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from newsletter.store.db import connect
from newsletter.store.tables import subscribers


def seed(database_url: str, emails: Iterable[str], status: str = "active"):
    engine = connect(database_url)
    now = datetime.now(UTC)
    rows = [{"email": e, "email_key": e.lower(), "name": f"Reader {i}", "status": status,
             "source": "test", "attributes": {}, "consented_at": now, "created_at": now,
             "updated_at": now} for i, e in enumerate(emails)]
    with engine.begin() as conn:
        conn.execute(subscribers.insert(), rows)
    return engine


def readers(n: int, start: int = 1) -> list[str]:
    return [f"reader{i}@example.com" for i in range(start, start + n)]
