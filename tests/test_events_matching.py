"""Matching events to a subscriber and a send: every way in, and every way an event is not ours."""

import pytest

from newsletter.feedback.events import EventKind
from newsletter.feedback.matching import NOT_OURS, Match, match_events
from newsletter.store.db import connect
from tests.test_events_world import (
    CONTENT_HASH,
    EDITION,
    SECRET,
    add_subscribers,
    event,
    our_message_id,
    record_send,
    token_for,
)


def altered(token):
    """The token with its last character changed, whatever that character was."""
    return token[:-1] + ("B" if token[-1] == "A" else "A")


pytestmark = pytest.mark.usefixtures("engines_disposed")


@pytest.fixture
def world(database_url):
    engine = connect(database_url)
    ana, jose, lucia, never = add_subscribers(
        engine, ["ana@example.net", "jose@bücher.example", "Lucy@Example.NET",
                 "never@example.net"])
    per_message = record_send(engine, {ana: "pm-ana", jose: "pm-jose", lucia: "pm-lucia"})
    # SendGrid and Mailgun answer one id per request: three rows share "req-1".
    per_request = record_send(engine, {ana: "req-1", jose: "req-1", lucia: "<req-1@mg>"},
                              week="2026-W48", provider="sendgrid",
                              content_hash="fedcba9876543210" * 4)
    return engine, {"ana": ana, "jose": jose, "lucia": lucia, "never": never,
                    "send": per_message, "send2": per_request}


def match(engine, *events, secrets=SECRET):
    with engine.connect() as conn:
        return match_events(conn, events, secrets=secrets)


def test_the_provider_message_id_the_ledger_recorded(world):
    engine, w = world
    assert match(engine, event(provider_message_id="pm-jose"),
                 event(provider_message_id="pm-jose", recipient="jose@xn--bcher-kva.example"),
                 event(provider_message_id="pm-jose", recipient="whoever@x.org")) == \
        [Match(w["jose"], w["send"], "ledger")] * 2 + [NOT_OURS]


def test_a_per_request_id_is_resolved_by_address_or_metadata(world):
    engine, w = world
    by_address, by_metadata, ambiguous, mailgun = match(
        engine,
        event(provider_message_id="req-1", recipient="JOSE@xn--bcher-kva.example"),
        event(provider_message_id="req-1", metadata={"subscriber_id": str(w["ana"])}),
        event(provider_message_id="req-1", recipient="someone@else.example"),
        event(provider_message_id="req-1@mg", recipient="lucy@example.net"))
    assert by_address == Match(w["jose"], w["send2"], "ledger"), "IDN in ASCII form, any case"
    assert by_metadata == Match(w["ana"], w["send2"], "ledger")
    assert ambiguous == NOT_OURS
    assert mailgun == Match(w["lucia"], w["send2"], "ledger"), "<id> in the ledger, id reported"


def test_our_message_id_needs_the_right_send_subscriber_and_hash(world):
    engine, w = world
    good, wrong_hash, not_in_send, other_week = match(
        engine,
        event(message_id=our_message_id(w["lucia"])),
        event(message_id=our_message_id(w["lucia"], content_hash="ffffffffff" + CONTENT_HASH)),
        event(message_id=our_message_id(w["never"])),
        event(message_id=our_message_id(w["ana"], week="2025-W01")))
    assert good == Match(w["lucia"], w["send"], "message_id")
    assert wrong_hash == not_in_send == other_week == NOT_OURS


def test_metadata_edition_and_subscriber_id(world):
    engine, w = world
    good, tag_form, wrong_edition = match(
        engine,
        event(metadata={"edition": EDITION, "subscriber_id": str(w["ana"])}),
        event(metadata={"edition": EDITION, "subscriber_id": f"{w['jose']}"}),
        event(metadata={"edition": "2026-W47.aaaaaaaaaaaa", "subscriber_id": str(w["ana"])}))
    assert good == Match(w["ana"], w["send"], "metadata")
    assert tag_form == Match(w["jose"], w["send"], "metadata")
    assert wrong_edition == NOT_OURS


def test_an_event_for_a_message_we_never_sent_is_not_ours_whatever_its_address(world):
    engine, w = world
    [unknown] = match(engine, event(provider_message_id="pm-nobody-knows",
                                    recipient="ana@example.net"))
    assert unknown == NOT_OURS


def test_the_address_alone_only_for_an_event_naming_no_message_and_someone_we_mailed(world):
    engine, w = world
    mailed, never_mailed, stranger, garbage = match(
        engine,
        event(recipient="LUCY@example.NET"),
        event(recipient="never@example.net"),
        event(recipient="stranger@example.net"),
        event(recipient="not an address \x00"))
    assert mailed == Match(w["lucia"], w["send2"], "address"), "put down to their last send"
    assert never_mailed == stranger == garbage == NOT_OURS


def test_mailto_requests_are_matched_by_a_valid_token_only(world):
    engine, w = world
    request = dict(kind=EventKind.UNSUBSCRIBED, provider="mailbox", recipient="ana@example.net")
    good, forged, other_key = match(
        engine,
        event(**request, metadata={"unsubscribe_token": token_for(w["jose"])}),
        event(**request, metadata={"unsubscribe_token": altered(token_for(w["jose"]))}),
        event(**request, metadata={"unsubscribe_token": token_for(w["jose"], "old-key")}))
    assert good == Match(w["jose"], w["send2"], "token"), \
        "the token, not the From address, decides; the newest send that reached jose"
    assert forged == other_key == NOT_OURS
    [rotated] = match(engine, event(**request, metadata={
        "unsubscribe_token": token_for(w["jose"], "old-key")}), secrets=(SECRET, "old-key"))
    assert rotated == Match(w["jose"], w["send2"], "token"), "a previous key still counts"


def test_a_report_quoting_our_headers_takes_the_token_and_the_send(world):
    engine, w = world
    token = {"unsubscribe_token": token_for(w["ana"])}
    with_id, redacted = match(
        engine,
        event(EventKind.COMPLAINED, provider="mailbox", message_id=our_message_id(w["ana"]),
              metadata=token),
        event(EventKind.COMPLAINED, provider="mailbox", metadata=token))
    assert with_id == Match(w["ana"], w["send"], "token")
    assert redacted == Match(w["ana"], w["send2"], "token")


def test_an_erased_subscriber_matches_nothing(world):
    engine, w = world
    from newsletter.audience import subscribers

    subscribers.remove(engine, "ana@example.net")
    by_token, by_address = match(
        engine,
        event(EventKind.UNSUBSCRIBED, provider="mailbox",
              metadata={"unsubscribe_token": token_for(w["ana"])}),
        event(recipient="ana@example.net"))
    assert by_token == by_address == NOT_OURS


def test_a_large_batch_costs_a_few_queries(world, database_url):
    engine, w = world
    import sqlalchemy as sa

    statements = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda *args: statements.append(args[2]))
    batch = [event(event_id=str(i), provider_message_id="req-1",
                   recipient="ana@example.net") for i in range(1000)]
    assert set(match(engine, *batch)) == {Match(w["ana"], w["send2"], "ledger")}
    assert len(statements) < 15


def test_a_report_about_another_mailbox_is_not_put_on_our_subscriber(world):
    engine, w = world
    # One returned message of ana's, two recipient blocks: only ana's is about ana.
    common = dict(kind=EventKind.BOUNCED, provider="mailbox",
                  message_id=our_message_id(w["ana"]),
                  metadata={"unsubscribe_token": token_for(w["ana"])})
    ana, other, redacted = match(engine, event(**common, recipient="ANA@example.net"),
                                 event(**common, recipient="someone@example.net"),
                                 event(**common, recipient="redacted"))
    assert ana == redacted == Match(w["ana"], w["send"], "token")
    assert other == NOT_OURS
