"""audience.changes: the rule every stop shares, stated once there. A subscriber stopped one
way (the operator's unsubscribe, a bounce, a complaint) stays exactly as it is whatever stops
it next: the same status, reason and time, and nothing new in its history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from newsletter.audience import changes, lookup, subscribers
from newsletter.audience.history import ChangeMethod
from newsletter.store.db import begin_write, connect
from newsletter.store.tables import status_changes

pytestmark = pytest.mark.usefixtures("engines_disposed")

LATER = datetime(2026, 11, 30, 7, 45, tzinfo=UTC)
STOPPED_AS = {"unsubscribed": "zoe@bücher.example", "bounced": "juergen@exämple.org",
              "complained": "renee@bücher.example"}


def _bounce(engine: sa.Engine, subscriber_id: int, _email: str) -> None:
    with begin_write(engine) as conn:
        changes.bounce(conn, [subscriber_id], "550 5.1.1 “no such user”",
                       method=ChangeMethod.SEND)


def _complain(engine: sa.Engine, _subscriber_id: int, email: str) -> None:
    changes.complain(engine, email, "abuse report", method=ChangeMethod.WEBHOOK)


def _operator_unsubscribes(engine: sa.Engine, _subscriber_id: int, email: str) -> None:
    changes.unsubscribe_address(engine, email, reason="asked by phone")


def _one_click(engine: sa.Engine, subscriber_id: int, _email: str) -> None:
    changes.unsubscribe(engine, subscriber_id, changes.UnsubscribeMethod.ONE_CLICK,
                        changes.Consent("192.0.2.7", "Mail/16.0"), LATER)


STOPS: dict[str, Callable[[sa.Engine, int, str], None]] = {
    "unsubscribed": _operator_unsubscribes, "bounced": _bounce, "complained": _complain}


def _history_length(engine: sa.Engine, subscriber_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(status_changes)
                            .where(status_changes.c.subscriber_id == subscriber_id)).scalar_one()


@pytest.mark.parametrize("stop_again", [_operator_unsubscribes, _one_click, _bounce, _complain],
                         ids=["cli-unsubscribe", "one-click", "bounce", "complaint"])
def test_a_stopped_subscriber_stays_as_it_is_whatever_stops_it_next(database_url, stop_again):
    engine = connect(database_url)
    for status, email in STOPPED_AS.items():
        sub = subscribers.add(engine, email, name="Zoë “Zo” Ñúñez")
        STOPS[status](engine, sub.id, email)
        before = lookup.get(engine, email)
        assert before is not None and before.status == status
        recorded = _history_length(engine, sub.id)

        stop_again(engine, sub.id, email)

        after = lookup.get(engine, email)
        assert after is not None
        assert (after.status, after.unsubscribe_reason, after.unsubscribed_at) == (
            before.status, before.unsubscribe_reason, before.unsubscribed_at)
        assert _history_length(engine, sub.id) == recorded
