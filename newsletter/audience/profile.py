"""What a reader changes of their own subscription besides its status: their name.

A change here is not a change of status (that is ``audience.changes``'s alone), but it lands
in the same never-updated status history, as a row whose status before and after are the
subscriber's status as it was (``from_status == to_status``), with the method that made it
and a detail that says what changed ("name changed"; never the value, which the subscriber
row holds), in the change's own transaction.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ..store.db import begin_write
from ..store.tables import subscribers
from .addresses import clean_name
from .changes import Consent
from .history import ChangeMethod, StatusChange, record

RENAMED = "name changed"


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
