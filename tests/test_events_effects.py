"""What events do to subscribers: suppression, unsubscribes, soft-bounce streaks, nothing."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from newsletter.audience import signup
from newsletter.feedback.events import EventKind
from newsletter.feedback.intake import Rules, take_in
from newsletter.store.db import connect
from newsletter.store.tables import consent_details
from tests.audience_helpers import get_by_id
from tests.test_events_world import (
    NOW,
    SECRET,
    add_subscribers,
    event,
    record_send,
    status_of,
    stored_events,
    token_for,
)

RULES = Rules((SECRET,), soft_bounce_limit=3)
WEEKS = ["2026-W45", "2026-W46", "2026-W47", "2026-W48"]


pytestmark = pytest.mark.usefixtures("engines_disposed")


@pytest.fixture
def engine(database_url):
    return connect(database_url)


def take(engine, *events, rules=RULES):
    return take_in(engine, events, rules, received_at=NOW)


def test_a_hard_bounce_and_a_complaint_suppress_at_once(engine):
    ana, ben = add_subscribers(engine, ["ana@example.net", "ben@bücher.example"])
    record_send(engine, {ana: "pm-a", ben: "pm-b"})
    result = take(engine,
                  event(EventKind.BOUNCED, event_id="1", provider_message_id="pm-a",
                        reason="550 5.1.1 “ana” unknown\r\nsecond line"),
                  event(EventKind.COMPLAINED, event_id="2", provider_message_id="pm-b",
                        reason="abuse"))
    assert dict(result.effects) == {"suppressed": 2}
    assert (status_of(engine, ana), status_of(engine, ben)) == ("bounced", "complained")
    reason = get_by_id(engine, ana).unsubscribe_reason
    assert reason == "bounced (postmark): 550 5.1.1 “ana” unknown second line"


def test_a_provider_unsubscribe_is_recorded_as_the_web_unsubscribe_is(engine):
    [ana] = add_subscribers(engine, ["ana@example.net"])
    record_send(engine, {ana: "re-1"}, provider="resend")
    take(engine, event(EventKind.UNSUBSCRIBED, provider="resend", provider_message_id="re-1"))
    assert status_of(engine, ana) == "unsubscribed"
    with engine.connect() as conn:
        method = conn.execute(sa.select(consent_details.c.unsubscribe_method)).scalar_one()
    assert method == "resend"


def test_a_mailto_request_unsubscribes_by_its_token_with_method_mailto(engine):
    [ana] = add_subscribers(engine, ["ana@example.net"])
    record_send(engine, {ana: "pm-a"})
    take(engine, event(EventKind.UNSUBSCRIBED, provider="mailbox", recipient="other@x.org",
                       metadata={"unsubscribe_token": token_for(ana)}))
    assert status_of(engine, ana) == "unsubscribed"
    assert signup.standing(engine, ana).unsubscribe_method == "mailto"


def test_rejected_accepted_delivered_and_unknown_change_nobody(engine):
    [ana] = add_subscribers(engine, ["ana@example.net"])
    record_send(engine, {ana: "pm-a"})
    kinds = (EventKind.REJECTED, EventKind.ACCEPTED, EventKind.DELIVERED, EventKind.UNKNOWN)
    take(engine, *[event(kind, event_id=str(kind), provider_message_id="pm-a")
                   for kind in kinds])
    assert status_of(engine, ana) == "active"
    assert {r.effect for r in stored_events(engine)} == {"none"}


def test_an_event_for_a_message_we_never_sent_touches_nobody(engine):
    [ana] = add_subscribers(engine, ["ana@example.net"])
    record_send(engine, {ana: "pm-a"})
    result = take(engine, event(EventKind.BOUNCED, provider_message_id="pm-unknown",
                                recipient="ana@example.net"))
    assert result.new == 1 and not result.effects
    assert status_of(engine, ana) == "active"
    [row] = stored_events(engine)
    assert (row.matched_by, row.subscriber_id, row.send_id, row.effect) == ("", None, None,
                                                                          "none")


def test_a_stopped_subscriber_stays_as_they_are(engine):
    [ana] = add_subscribers(engine, ["ana@example.net"], status="unsubscribed")
    record_send(engine, {ana: "pm-a"})
    take(engine, event(EventKind.COMPLAINED, provider_message_id="pm-a"))
    assert status_of(engine, ana) == "unsubscribed"
    assert stored_events(engine)[0].effect == "already unsubscribed"


def _weekly_sends(engine, subscriber_id):
    return {week: record_send(engine, {subscriber_id: f"{week}-id"}, week=week,
                              created_at=NOW + timedelta(days=7 * i))
            for i, week in enumerate(WEEKS)}


def _deferred(week, n, *, when):
    return event(EventKind.DEFERRED, event_id=f"{week}-deferred-{n}",
                 provider_message_id=f"{week}-id", occurred_at=when, reason="452 mailbox full")


def test_three_messages_deferred_in_a_row_suppress_but_retries_of_one_do_not(engine):
    [ana] = add_subscribers(engine, ["ana@example.net"])
    _weekly_sends(engine, ana)
    # Five deferrals of one message (the provider retrying it) are one soft bounce.
    take(engine, *[_deferred(WEEKS[0], n, when=NOW + timedelta(hours=n)) for n in range(5)])
    assert status_of(engine, ana) == "active"
    take(engine, _deferred(WEEKS[1], 0, when=NOW + timedelta(days=7)))
    assert status_of(engine, ana) == "active"
    assert stored_events(engine)[-1].effect == "soft bounce 2 of 3"
    take(engine, _deferred(WEEKS[2], 0, when=NOW + timedelta(days=14)))
    assert status_of(engine, ana) == "bounced"
    assert get_by_id(engine, ana).unsubscribe_reason.startswith(
        "3 soft bounces in a row (postmark): 452 mailbox full")


def test_a_delivery_between_soft_bounces_breaks_the_streak(engine):
    [ana] = add_subscribers(engine, ["ana@example.net"])
    _weekly_sends(engine, ana)
    take(engine, _deferred(WEEKS[0], 0, when=NOW))
    take(engine, _deferred(WEEKS[1], 0, when=NOW + timedelta(days=7)),
         event(EventKind.DELIVERED, event_id="late", provider_message_id=f"{WEEKS[1]}-id",
               occurred_at=NOW + timedelta(days=7, hours=5)))
    take(engine, _deferred(WEEKS[2], 0, when=NOW + timedelta(days=14)))
    take(engine, _deferred(WEEKS[3], 0, when=NOW + timedelta(days=21)))
    assert status_of(engine, ana) == "active", "the W46 message got through in the end"
    assert stored_events(engine)[-1].effect == "soft bounce 2 of 3"


def test_the_limit_is_configurable(engine):
    [ana] = add_subscribers(engine, ["ana@example.net"])
    _weekly_sends(engine, ana)
    take(engine, _deferred(WEEKS[0], 0, when=NOW), rules=Rules((SECRET,), soft_bounce_limit=1))
    assert status_of(engine, ana) == "bounced"
