"""Status changes and reads the tests need by a handle the product does not use.

A hard bounce arrives in the product by subscriber id, inside the ledger's or the event log's
transaction (``changes.bounce``); tests name the address instead.
"""

from __future__ import annotations

import sqlalchemy as sa

from newsletter.audience import changes, lookup, subscribers
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
        changes.bounce(conn, ids, reason, method=ChangeMethod.CLI)
    return lookup.get(engine, email)


# Every standing an address can have when someone signs it up again.
STANDINGS = ("new", "pending", "active", "unsubscribed", "bounced", "complained", "erased")


def put_in_standing(engine: sa.Engine, standing: str, email: str,
                    name: str | None = None) -> None:
    """The address put on the list (or not, for ``new``) in one of ``STANDINGS``, each reached
    the way the product reaches it."""
    if standing == "new":
        return
    subscribers.add(engine, email, name=name,
                    status="pending" if standing == "pending" else "active")
    if standing == "unsubscribed":
        changes.unsubscribe_address(engine, email)
    elif standing == "bounced":
        mark_bounced(engine, email, "550 5.1.1 unknown user")
    elif standing == "complained":
        changes.complain(engine, email, "abuse report")
    elif standing == "erased":
        subscribers.remove(engine, email)


def get_by_id(engine: sa.Engine, subscriber_id: int) -> Subscriber | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(subscribers_table)
                           .where(subscribers_table.c.id == subscriber_id)).first()
    return lookup.to_subscriber(row) if row else None
