"""``newsletter subscribers check``: rows stored before today's rules that would not pass them.

An address or a name that was accepted once (an older version, a hand-edited database) and
that today's ``Address`` rules refuse is reported here, never mailed: personalization refuses
such a row with a HeaderError naming the subscriber.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from ..errors import HeaderError, SubscriberError
from .addresses import clean_name, envelope_address, parse_address
from .lookup import iter_subscribers


@dataclass(frozen=True)
class RowProblem:
    subscriber_id: int
    email: str
    status: str
    reason: str

    def __str__(self) -> str:
        return f"id {self.subscriber_id} {self.email!r} ({self.status}): {self.reason}"


def problems(engine: sa.Engine) -> Iterator[RowProblem]:
    """Every subscriber whose stored address or name breaks today's rules, in id order."""
    for sub in iter_subscribers(engine):
        reason = row_problem(sub.email, sub.name)
        if reason is not None:
            yield RowProblem(sub.id, sub.email, sub.status, reason)


def row_problem(email: str, name: str | None) -> str | None:
    """Why a stored address and name could not be mailed, or None when they can."""
    try:
        address = parse_address(email)
        if address.name is not None or address.email != email:
            return "the address is stored with a name or spaces around it"
        envelope_address(email)
        clean_name(name)
    except (SubscriberError, HeaderError) as exc:
        return str(exc)
    return None
