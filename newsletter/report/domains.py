"""Hard bounces and complaints of one send by recipient domain.

Counted as ``feedback.report`` counts them: a subscriber once per kind, however many events
say so. The domain is read from the subscriber's address and only the domain leaves this
module. A subscriber erased since (its row gone, its events anonymized) counts under
"(erased)", so the domains add up to the funnel's figures.
"""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from ..audience.addresses import display_domain
from ..feedback.events import EventKind
from ..store.tables import events, subscribers
from .model import DomainFigures

TOP = 10
ERASED = "(erased)"
OTHERS = "(other domains)"


def by_domain(conn: sa.Connection, send_id: int) -> list[DomainFigures]:
    """Every domain with a hard bounce or a complaint, most first (then by name)."""
    e, s = events.c, subscribers.c
    query = (sa.select(e.subscriber_id, e.kind, s.email).distinct()
             .select_from(events.outerjoin(subscribers, s.id == e.subscriber_id))
             .where(e.send_id == send_id, e.subscriber_id.is_not(None),
                    e.kind.in_((EventKind.BOUNCED, EventKind.COMPLAINED))))
    bounced: Counter[str] = Counter()
    complained: Counter[str] = Counter()
    for _, kind, email in conn.execute(query):
        domain = display_domain(email) if email else ERASED
        (bounced if kind == EventKind.BOUNCED else complained)[domain] += 1
    found = [DomainFigures(d, bounced[d], complained[d]) for d in bounced | complained]
    return sorted(found, key=lambda f: (-f.total, f.domain))


def top(found: list[DomainFigures]) -> tuple[tuple[DomainFigures, ...], DomainFigures | None]:
    """The first ``TOP`` and the rest summed (None when there is no rest)."""
    rest = found[TOP:]
    if not rest:
        return tuple(found), None
    return tuple(found[:TOP]), DomainFigures(OTHERS, sum(f.bounced for f in rest),
                                             sum(f.complained for f in rest))
