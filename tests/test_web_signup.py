"""audience.changes' batch of unsubscribes: the same outcome, request by request, as one
at a time, in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from newsletter.audience import changes, lookup, signup, subscribers
from newsletter.audience.changes import Change, Consent, Unsubscribe, UnsubscribeMethod
from newsletter.store.db import connect
from tests.audience_helpers import mark_bounced

T = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_a_batch_gives_each_request_its_own_outcome(database_url):
    engine = connect(database_url)
    active = subscribers.add(engine, "a@example.com")
    pending = subscribers.add(engine, "p@example.com", status="pending")
    bounced = subscribers.add(engine, "b@example.com")
    mark_bounced(engine, "b@example.com", "550 unknown user")
    gone = subscribers.add(engine, "g@example.com")
    subscribers.remove(engine, "g@example.com")
    one_click, page = UnsubscribeMethod.ONE_CLICK, UnsubscribeMethod.PAGE
    requests = [
        Unsubscribe(active.id, one_click, Consent("192.0.2.1", "Mail/1"), T),
        Unsubscribe(active.id, one_click, Consent("192.0.2.9", "Mail/2"), T),   # twice
        Unsubscribe(pending.id, page, Consent("2001:db8::1", "Browser\tX"), T + timedelta(1)),
        Unsubscribe(active.id, page, Consent(None, None), T),                  # other method
        Unsubscribe(bounced.id, one_click, Consent(), T),
        Unsubscribe(gone.id, one_click, Consent(), T),
    ]
    assert changes.unsubscribe_many(engine, requests) == [
        Change("active", "unsubscribed"),
        Change("unsubscribed", "unsubscribed"),
        Change("active", "unsubscribed"),
        Change("unsubscribed", "unsubscribed"),
        Change("bounced", "bounced"),
        None,
    ]
    first = signup.standing(engine, active.id)
    assert first.status == "unsubscribed" and first.unsubscribe_method == "one-click"
    assert signup.standing(engine, pending.id).unsubscribe_method == "page"
    assert lookup.get(engine, "a@example.com").unsubscribe_reason == "unsubscribed (one-click)"
    assert changes.unsubscribe_many(engine, requests[:1]) == [Change("unsubscribed",
                                                                    "unsubscribed")]
