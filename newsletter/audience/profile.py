"""What a reader changes of their own subscription besides its status: their name, their
address.

A change here is not a change of status (that is ``audience.changes``'s alone), but it lands
in the same never-updated status history, as a row whose status before and after are the
subscriber's status as it was (``from_status == to_status``), with the method that made it
and a detail that says what changed ("name changed", "address changed"; never the value,
which the subscriber row holds), in the change's own transaction.

An address moves only to one that is free: not another subscriber's, and not one erased on
request (its hash in ``suppressions``): an erased address comes back only by its own sign-up
and confirmation, never by someone else's subscription moving onto it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from ..store.db import begin_write
from ..store.tables import subscribers
from .addresses import Address, clean_name, email_hash
from .changes import Consent
from .history import ChangeMethod, StatusChange, record
from .lookup import suppressed
from .model import SubscriberStatus

RENAMED = "name changed"
READDRESSED = "address changed"
# The statuses whose address may move: receiving mail, or about to (a stopped subscriber's
# address is the record of what stopped it).
MOVABLE = (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)


class Move(StrEnum):
    """What became of a change of address."""

    CHANGED = "changed"
    SAME = "same"          # the address is already the subscriber's
    TAKEN = "taken"        # another subscriber's, or erased on request: nothing changed
    STOPPED = "stopped"    # the subscriber no longer receives mail: nothing changed
    NOBODY = "nobody"      # no such subscriber


@dataclass(frozen=True)
class AddressChange:
    outcome: Move
    old_email: str = ""  # the address it had, when it changed


def rename(engine: sa.Engine, subscriber_id: int, name: str | None, consent: Consent,
           now: datetime, *, method: ChangeMethod = ChangeMethod.WEB) -> bool | None:
    """The reader's new name (validated like every name: ``clean_name`` raises
    SubscriberError); True when it changed, False when it was the same, None when there is no
    subscriber."""
    name = clean_name(name)
    s = subscribers.c
    with begin_write(engine) as conn:
        row = conn.execute(sa.select(s.status, s.name).where(s.id == subscriber_id)
                           .with_for_update()).first()
        if row is None:
            return None
        if (row.name or None) == name:
            return False
        conn.execute(subscribers.update().where(s.id == subscriber_id)
                     .values(name=name, updated_at=now))
        record(conn, StatusChange(subscriber_id, now, row.status, row.status, method,
                                  detail=RENAMED, ip=consent.ip, user_agent=consent.user_agent))
    return True


def change_address(conn: sa.Connection, subscriber_id: int, address: Address,
                   consent: Consent, now: datetime, *,
                   method: ChangeMethod = ChangeMethod.WEB) -> AddressChange:
    """Within the caller's write transaction: the subscriber's address becomes ``address``
    when that one is free (see the module's rule), recorded in the status history."""
    s = subscribers.c
    row = conn.execute(sa.select(s.status, s.email, s.email_key).where(s.id == subscriber_id)
                       .with_for_update()).first()
    if row is None:
        return AddressChange(Move.NOBODY)
    if row.email_key == address.key:
        return AddressChange(Move.SAME)
    if row.status not in MOVABLE:
        return AddressChange(Move.STOPPED)
    if _taken(conn, address):
        return AddressChange(Move.TAKEN)
    try:
        with conn.begin_nested():  # another subscriber may take it this very moment
            conn.execute(subscribers.update().where(s.id == subscriber_id).values(
                email=address.email, email_key=address.key, updated_at=now))
    except sa.exc.IntegrityError:
        return AddressChange(Move.TAKEN)
    record(conn, StatusChange(subscriber_id, now, row.status, row.status, method,
                              detail=READDRESSED, ip=consent.ip, user_agent=consent.user_agent))
    return AddressChange(Move.CHANGED, row.email)


def _taken(conn: sa.Connection, address: Address) -> bool:
    s = subscribers.c
    if conn.execute(sa.select(s.id).where(s.email_key == address.key)).first() is not None:
        return True
    return suppressed(conn, email_hash(address.key))
