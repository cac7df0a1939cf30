"""Reading the subscriber list: one subscriber, every subscriber streamed, counts.

Reading functions stream in id order with keyset pagination, so memory stays flat however long
the list. Plain functions taking an Engine (from ``newsletter.store.db.connect``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from ..errors import SubscriberError
from ..store.tables import subscribers, suppressions
from .addresses import Address, email_hash, parse_address
from .model import STATUSES, Subscriber
from .recipient import Recipient


def check_status(status: str, allowed: Iterable[str] = STATUSES) -> str:
    allowed = tuple(allowed)
    if status not in allowed:
        raise SubscriberError(f"unknown status {status!r}; expected one of: {', '.join(allowed)}")
    return status


def to_subscriber(row: sa.Row[*tuple[Any, ...]]) -> Subscriber:
    m = row._mapping
    return Subscriber(
        id=m["id"],
        email=m["email"],
        name=m["name"],
        status=m["status"],
        source=m["source"],
        attributes=m["attributes"] or {},
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        consented_at=m["consented_at"],
        confirmed_at=m["confirmed_at"],
        unsubscribed_at=m["unsubscribed_at"],
        unsubscribe_reason=m["unsubscribe_reason"],
    )


def get(engine: sa.Engine, email: str) -> Subscriber | None:
    """The subscriber with this address (any case), or None."""
    key = parse_or_raise(email).key
    with engine.connect() as conn:
        row = conn.execute(sa.select(subscribers).where(subscribers.c.email_key == key)).first()
    return to_subscriber(row) if row else None


def suppressed(conn: sa.Connection, digest: str) -> bool:
    query = sa.select(suppressions.c.id).where(suppressions.c.email_hash == digest)
    return conn.execute(query).first() is not None


def _keyset(engine: sa.Engine, query: sa.Select[*tuple[Any, ...]],
            chunk: int) -> Iterator[sa.Row[*tuple[Any, ...]]]:
    """Rows of ``query`` in id order, fetched ``chunk`` at a time.

    Each page is its own short read, so no cursor or lock is held while the caller works
    (sending a batch can take minutes), and memory is bounded by ``chunk``.
    """
    last = 0
    while True:
        page = query.where(subscribers.c.id > last).order_by(subscribers.c.id).limit(chunk)
        with engine.connect() as conn:
            rows = conn.execute(page).all()
        yield from rows
        if len(rows) < chunk:
            return
        last = rows[-1].id


def iter_subscribers(
    engine: sa.Engine, status: str | None = None, chunk: int = 1000
) -> Iterator[Subscriber]:
    """Every subscriber (or those with ``status``), in id order, streamed."""
    query = sa.select(subscribers)
    if status is not None:
        query = query.where(subscribers.c.status == check_status(status))
    for row in _keyset(engine, query, chunk):
        yield to_subscriber(row)


def iter_recipients(
    engine: sa.Engine, status: str = "active", chunk: int = 1000
) -> Iterator[Recipient]:
    """The recipients with ``status`` in id order, streamed: what the sender needs of each."""
    c = subscribers.c
    query = sa.select(c.id, c.email, c.name, c.attributes).where(c.status == check_status(status))
    for row in _keyset(engine, query, chunk):
        yield Recipient(row.id, row.email, row.name or "", dict(row.attributes or {}))


def count_by_status(engine: sa.Engine) -> dict[str, int]:
    """Subscribers per status, every status present (zero when none)."""
    query = sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
    with engine.connect() as conn:
        counts: dict[str, int] = dict(conn.execute(query).all())
    return {status: counts.get(status, 0) for status in STATUSES}


def parse_or_raise(email: str) -> Address:
    """``parse_address``, its error naming the value."""
    try:
        return parse_address(email)
    except SubscriberError as exc:
        raise SubscriberError(f"{email.strip()!r}: {exc}") from None


def describe_address(engine: sa.Engine, address: Address) -> str:
    with engine.connect() as conn:
        if suppressed(conn, email_hash(address.key)):
            return f"{address.email} was removed on request; only a hashed entry remains"
    return f"no subscriber with address {address.email}"


def describe_missing(engine: sa.Engine, email: str) -> str:
    """Why ``get`` found nothing: never subscribed, or erased on request."""
    return describe_address(engine, parse_or_raise(email))
