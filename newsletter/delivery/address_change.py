"""A reader's change of address, through the outbox: asked for on the manage page, made only
once the link mailed to the new address is used.

``request`` queues an ``address_confirm`` mail to the new address in the request's one
transaction, whoever that address is: the page answers the same whether the address is on the
list, erased or a stranger's, and so does the outbox (the per-kind cooldown keeps the form from
mailing anyone again and again). Whether the address is free is judged when the link is used
(``confirm``): then the address moves (``audience.profile.change_address``, which refuses one
that is another subscriber's or erased on request, and records the change in the status
history), the link is used up, and an ``address_notice`` to the old address is queued, all in
one transaction. A link works once, and for ``confirm_max_age`` after it was asked for (the
token says when).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from ..audience import profile
from ..audience.addresses import Address, parse_address
from ..audience.changes import Consent
from ..audience.history import ChangeMethod
from ..errors import SubscriberError
from ..store.db import begin_write
from ..store.tables import subscribers
from .confirmations import enqueue
from .outbox_links import link_row, use
from .states import OutboxKind


class Outcome(StrEnum):
    """What a request or a confirmation came to."""

    QUEUED = "queued"      # the mail to the new address is on its way
    CHANGED = "changed"    # the address is the new one now
    SAME = "same"          # it is the subscriber's address already
    TAKEN = "taken"        # not free (on the list, or erased on request): nothing changed
    STOPPED = "stopped"    # the subscriber receives no mail: nothing changed
    USED = "used"          # the link was used before
    NOBODY = "nobody"      # no such subscriber, or no such link


def request(engine: sa.Engine, subscriber_id: int, address: Address, now: datetime) -> Outcome:
    """The reader asks for ``address``: QUEUED, or SAME, STOPPED, NOBODY (nothing queued)."""
    s = subscribers.c
    with begin_write(engine) as conn:
        row = conn.execute(sa.select(s.status, s.email_key).where(s.id == subscriber_id)
                           .with_for_update()).first()
        if row is None:
            return Outcome.NOBODY
        if row.email_key == address.key:
            return Outcome.SAME
        if row.status not in profile.MOVABLE:
            return Outcome.STOPPED
        enqueue(conn, subscriber_id, now, OutboxKind.ADDRESS_CONFIRM, address=address.email)
    return Outcome.QUEUED


@dataclass(frozen=True)
class Asked:
    """What a link would do: move the subscriber to ``new_email``, unless ``used``."""

    new_email: str
    used: bool


def asked(engine: sa.Engine, row_id: int) -> Asked | None:
    """The link's request, read only (its page's GET); None when it names none."""
    with engine.connect() as conn:
        link = link_row(conn, row_id, OutboxKind.ADDRESS_CONFIRM)
    if link is None or not link.address:
        return None
    return Asked(link.address, link.used)


def confirm(engine: sa.Engine, row_id: int, consent: Consent, now: datetime, *,
            method: ChangeMethod = ChangeMethod.WEB) -> Outcome:
    """The link's button: the address moves, the link is used, the old address's notice is
    queued, in one transaction; or, with any other outcome, nothing changes."""
    with begin_write(engine) as conn:
        link = link_row(conn, row_id, OutboxKind.ADDRESS_CONFIRM, lock=True)
        if link is None or not link.address:
            return Outcome.NOBODY
        if link.used:
            return Outcome.USED
        try:
            address = parse_address(link.address)
        except SubscriberError:  # written through the same rule: only a rule changed since
            return Outcome.NOBODY
        change = profile.change_address(conn, link.subscriber_id, address, consent, now,
                                        method=method)
        if change.outcome is not profile.Move.CHANGED:
            return Outcome(change.outcome.value)
        use(conn, row_id, now)
        enqueue(conn, link.subscriber_id, now, OutboxKind.ADDRESS_NOTICE,
                address=change.old_email)
    return Outcome.CHANGED
