"""Status changes and reads the tests need by a handle the product does not use.

A hard bounce arrives in the product by subscriber id, inside the ledger's or the event log's
transaction (``subscribers.mark_bounced_ids``); tests name the address instead.
"""

from __future__ import annotations

import sqlalchemy as sa

from newsletter.audience import lookup, subscribers
from newsletter.audience.history import ChangeMethod
from newsletter.audience.model import Subscriber
from newsletter.store.db import begin_write
from newsletter.store.tables import subscribers as subscribers_table


def mark_bounced(engine: sa.Engine, email: str, reason: str) -> Subscriber | None:
    """The address hard-bounced (as the CLI would record it); None when it is not on the list."""
    key = lookup.parse_or_raise(email).key
    with begin_write(engine) as conn:
        ids = list(conn.execute(sa.select(subscribers_table.c.id)
                                .where(subscribers_table.c.email_key == key)).scalars())
        subscribers.mark_bounced_ids(conn, ids, reason, method=ChangeMethod.CLI)
    return lookup.get(engine, email)


def get_by_id(engine: sa.Engine, subscriber_id: int) -> Subscriber | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(subscribers_table)
                           .where(subscribers_table.c.id == subscriber_id)).first()
    return lookup.to_subscriber(row) if row else None
