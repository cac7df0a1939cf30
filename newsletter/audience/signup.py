"""The web's and the API's side of the subscriber list: a sign-up, and what the public pages may
know of a subscriber named by a signed token.

A web sign-up makes a new address (or one erased on request) a ``pending`` subscriber (source
``web``, the time); for an address already on the list it is ``audience.changes.sign_up``,
which keeps the rule of what a sign-up changes. Confirming, unsubscribing and resubscribing are
``audience.changes``'s too: that module makes every change of a subscriber's status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..store.tables import consent_details, subscribers
from . import changes
from .addresses import Address
from .history import ChangeMethod
from .model import SubscriberStatus


@dataclass(frozen=True)
class Standing:
    """What the public pages may know of a subscriber named by a signed token."""

    id: int
    email: str
    name: str | None
    status: str
    unsubscribe_method: str | None

    @property
    def may_resubscribe(self) -> bool:
        return changes.may_resubscribe(self.status, self.unsubscribe_method)


def standing(engine: sa.Engine, subscriber_id: int) -> Standing | None:
    s, d = subscribers.c, consent_details.c
    query = (
        sa.select(s.id, s.email, s.name, s.status, d.unsubscribe_method)
        .select_from(subscribers.outerjoin(consent_details, d.subscriber_id == s.id))
        .where(s.id == subscriber_id)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return Standing(*row) if row else None


def was_erased(engine: sa.Engine, subscriber_id: int) -> bool:
    """True when a subscriber with this id existed and was erased on request: its row is gone
    but the id was handed out (ids are never reused). False for an id never handed out."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            sequence = conn.execute(
                sa.text("SELECT pg_get_serial_sequence('subscribers', 'id')")).scalar()
            last, called = conn.execute(
                sa.text(f"SELECT last_value, is_called FROM {sequence}")).one()
            top = last if called else 0
        else:
            top = conn.execute(sa.text(
                "SELECT seq FROM sqlite_sequence WHERE name = 'subscribers'")).scalar() or 0
        exists = conn.execute(sa.select(subscribers.c.id)
                              .where(subscribers.c.id == subscriber_id)).first()
    return exists is None and 0 < subscriber_id <= top


def sign_up(conn: sa.Connection, address: Address, name: str | None, consent: changes.Consent,
            now: datetime, *, method: ChangeMethod = ChangeMethod.WEB) -> int:
    """Within the caller's write transaction: record a web sign-up; return the subscriber's id
    (whatever its status: the caller queues a confirmation for every sign-up, and the outbox
    decides whether one is sent).

    New, or erased on request: a pending subscriber. On the list already:
    ``changes.sign_up`` (pending again, or nothing changes). The sign-up goes to the status
    history in every case.
    """
    s = subscribers.c
    row = conn.execute(sa.select(s.id, s.status).where(s.email_key == address.key)
                       .with_for_update()).first()
    if row is None:
        # New, or erased on request: the hash in suppressions stays until the person confirms.
        before = None
        values = dict(status=SubscriberStatus.PENDING, source=changes.SOURCE, consented_at=now,
                      email=address.email, email_key=address.key, name=name or address.name,
                      attributes={}, created_at=now, updated_at=now)
        inserted = conn.execute(subscribers.insert().values(values)).inserted_primary_key
        assert inserted is not None  # an INSERT of one row always has its key
        subscriber_id: int = inserted[0]
    else:
        subscriber_id, before = row
    changes.sign_up(conn, subscriber_id, before, name, consent, now, method=method)
    return subscriber_id
