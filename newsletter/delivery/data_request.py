"""A reader's own data (what ``subscribers export --person`` shows), asked for on the manage
page and downloaded once with the link mailed to the subscriber's address.

``request`` queues a ``data_link`` mail to the subscriber's own address (the outbox's per-kind
cooldown keeps a flood of requests to a few mails a day). The link's page shows a button and
changes nothing (a mail scanner's GET must not use it up); ``download`` gives the record and
uses the link up, once: a second request, or one racing the first, gets nothing. It works for
``confirm_max_age`` after it was asked for (the token says when).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from ..audience.person_export import subscriber_record
from ..store.db import begin_write
from ..store.tables import subscribers
from .confirmations import enqueue
from .outbox_links import link_row, use
from .states import OutboxKind


class Link(StrEnum):
    READY = "ready"
    USED = "used"


def request(engine: sa.Engine, subscriber_id: int, now: datetime) -> bool:
    """Queue the mail with the link; False when there is no such subscriber."""
    with begin_write(engine) as conn:
        found = conn.execute(sa.select(subscribers.c.id)
                             .where(subscribers.c.id == subscriber_id)).first()
        if found is None:
            return False
        enqueue(conn, subscriber_id, now, OutboxKind.DATA_LINK)
    return True


def state(engine: sa.Engine, row_id: int) -> Link | None:
    """Whether the link may still be used (its page's GET, read only); None: no such link."""
    with engine.connect() as conn:
        link = link_row(conn, row_id, OutboxKind.DATA_LINK)
    if link is None:
        return None
    return Link.USED if link.used else Link.READY


def download(engine: sa.Engine, row_id: int, now: datetime) -> dict[str, Any] | Link | None:
    """The person's record, the link used up with it; Link.USED when it was used before,
    None when there is no such link (or person)."""
    with engine.connect() as conn:
        link = link_row(conn, row_id, OutboxKind.DATA_LINK)
    if link is None:
        return None
    if link.used:
        return Link.USED
    record = subscriber_record(engine, link.subscriber_id)
    if record is None:
        return None
    with begin_write(engine) as conn:
        # Read first, used up second: only the request whose write came first gets the data.
        if not use(conn, row_id, now):
            return Link.USED
    return record
