"""Postmark webhooks: Basic credentials with rotation; Bounce, SpamComplaint, SubscriptionChange."""

import base64
import json
from datetime import UTC, datetime

import pytest

from newsletter.feedback.events import (
    BadSignature,
    EventKind,
    MalformedPayload,
    NotConfigured,
    WebhookRejected,
)
from newsletter.feedback.webhooks import postmark
from newsletter.feedback.webhooks.inbound import Inbound, WebhookSettings
from tests.replay_helpers import MemoryReplayGuard

CREDENTIALS = "postmark:pässwörd-“2026”"

# anymail tests/test_postmark_webhooks.py::test_bounce_event, with our metadata
BOUNCE = {
    "RecordType": "Bounce", "ID": 901542550, "Type": "HardBounce", "TypeCode": 1, "ServerID": 23,
    "Name": "Hard bounce", "MessageID": "2706ee8a-737c-4285-b032-ccd317af53ed",
    "MessageStream": "outbound",
    "Description": "The server was unable to deliver your message (ex: unknown user, mailbox "
                   "not found).",
    "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
    "Email": "josé@bücher.example", "From": "sender@example.com",
    "BouncedAt": "2016-04-27T16:28:50.3963933-04:00", "DumpAvailable": True, "Inactive": True,
    "CanActivate": True, "Subject": "Postmark event test",
    "Metadata": {"edition": "2026-W47.0123456789ab", "subscriber_id": "42"},
}
# Postmark docs, spam-complaint-webhook page (TypeCode 512 as published, not 100001)
SPAM = {
    "RecordType": "SpamComplaint", "MessageStream": "outbound", "ID": 42, "Type": "SpamComplaint",
    "TypeCode": 512, "Name": "Spam complaint", "Tag": "Test",
    "MessageID": "00000000-0000-0000-0000-000000000000",
    "Metadata": {"a_key": "a_value", "b_key": "b_value"}, "ServerID": 1234, "Description": "",
    "Details": "Test spam complaint details", "Email": "john@example.com",
    "From": "sender@example.com", "BouncedAt": "2019-11-05T16:33:54.9070259Z",
    "DumpAvailable": True, "Inactive": True, "CanActivate": False, "Subject": "Test subject",
    "Content": "<Abuse report dump>",
}
# Postmark docs, subscription-change page
CHANGE = {
    "RecordType": "SubscriptionChange", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "ServerID": 123456, "MessageStream": "outbound", "ChangedAt": "2020-02-01T10:53:34.416071Z",
    "Recipient": "bounced-address@wildbit.com", "Origin": "Recipient", "SuppressSending": True,
    "SuppressionReason": "HardBounce", "Tag": "my-tag",
    "Metadata": {"example": "value", "example_2": "value"},
}


def auth(pair: str) -> dict:
    return {"authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def encode(payload) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def test_matching_credentials_pass_including_a_rotated_pair():
    postmark.verify(b"{}", auth(CREDENTIALS), CREDENTIALS)
    postmark.verify(b"{}", auth("old:secret"), ["old:secret", CREDENTIALS])
    postmark.verify(b"{}", auth(CREDENTIALS), f"old:secret, {CREDENTIALS}")


@pytest.mark.parametrize("headers", [
    {}, auth("postmark:wrong"), auth(CREDENTIALS + "x"), auth(CREDENTIALS[:-1]),
    {"Authorization": "Bearer " + base64.b64encode(CREDENTIALS.encode()).decode()},
    {"Authorization": "Basic not-base64!"},
], ids=["none", "wrong password", "longer", "shorter", "other scheme", "garbage"])
def test_anything_else_is_a_401_with_a_challenge(headers):
    with pytest.raises(BadSignature) as info:
        postmark.verify(b"{}", headers, CREDENTIALS)
    assert info.value.status == 401
    assert info.value.headers["WWW-Authenticate"].startswith("Basic realm=")


def test_no_credentials_configured_refuses():
    with pytest.raises(NotConfigured):
        postmark.verify(b"{}", auth(":"), "")


def test_a_hard_bounce():
    [event] = postmark.parse(encode(BOUNCE))
    assert event.kind == EventKind.BOUNCED
    assert event.recipient == "josé@bücher.example"
    assert event.code == "HardBounce"
    assert event.reason.startswith("smtp;550 5.1.1")
    assert event.event_id == "Bounce:901542550"
    assert event.provider_message_id == "2706ee8a-737c-4285-b032-ccd317af53ed"
    assert event.metadata == {"edition": "2026-W47.0123456789ab", "subscriber_id": "42"}
    assert event.occurred_at == datetime(2016, 4, 27, 20, 28, 50, 396393, UTC)


def test_the_published_spam_complaint_is_a_complaint_whatever_its_type_code():
    [event] = postmark.parse(encode(SPAM))
    assert event.kind == EventKind.COMPLAINED
    assert event.metadata == {}  # none of our keys


@pytest.mark.parametrize(("changes", "kind"), [
    ({}, EventKind.BOUNCED),
    ({"SuppressionReason": "SpamComplaint"}, EventKind.COMPLAINED),
    ({"SuppressionReason": "ManualSuppression"}, EventKind.UNSUBSCRIBED),
    ({"SuppressionReason": "ManualSuppression", "Origin": "Customer"}, EventKind.REJECTED),
    ({"SuppressSending": False, "SuppressionReason": None}, EventKind.UNKNOWN),
])
def test_broadcast_stream_subscription_changes(changes, kind):
    [event] = postmark.parse(encode(dict(CHANGE, **changes)))
    assert event.kind == kind
    assert event.recipient == "bounced-address@wildbit.com"
    assert event.event_id.startswith("sha256:")  # SubscriptionChange has no id of its own


@pytest.mark.parametrize(("bounce_type", "inactive", "kind"), [
    ("BadEmailAddress", False, EventKind.BOUNCED),
    ("SoftBounce", False, EventKind.DEFERRED),
    ("SoftBounce", True, EventKind.BOUNCED),  # Postmark deactivated the address
    ("Transient", False, EventKind.DEFERRED),
    ("DnsError", False, EventKind.DEFERRED),
    ("SpamNotification", False, EventKind.DEFERRED),
    ("ManuallyDeactivated", True, EventKind.REJECTED),
    ("Unsubscribe", False, EventKind.UNSUBSCRIBED),
    ("AutoResponder", False, EventKind.UNKNOWN),
])
def test_bounce_types(bounce_type, inactive, kind):
    [event] = postmark.parse(encode(dict(BOUNCE, Type=bounce_type, Inactive=inactive)))
    assert event.kind == kind


def test_a_delivery_and_other_records():
    delivery = {"RecordType": "Delivery", "MessageID": "m1", "Recipient": "a@example.com",
                "DeliveredAt": "2026-11-23T08:00:00Z", "Details": "250 ok", "Metadata": {}}
    [event] = postmark.parse(encode(delivery))
    assert event.kind == EventKind.DELIVERED
    [event] = postmark.parse(encode({"RecordType": "Open", "Recipient": "a@example.com"}))
    assert event.kind == EventKind.UNKNOWN
    with pytest.raises(MalformedPayload):
        postmark.parse(b"[]")


def test_replayed_records_keep_their_ids():
    assert postmark.parse(encode(CHANGE))[0].event_id == postmark.parse(encode(CHANGE))[0].event_id
    other = dict(CHANGE, ChangedAt="2020-02-02T10:53:34Z")
    assert postmark.parse(encode(other))[0].event_id != postmark.parse(encode(CHANGE))[0].event_id


async def test_inbound_round_trip():
    inbound = Inbound(WebhookSettings(postmark_webhook_auth=[CREDENTIALS]),
                      replay=MemoryReplayGuard())
    received = await inbound.receive("postmark", encode(CHANGE), auth(CREDENTIALS))
    assert [e.kind for e in received.events] == [EventKind.BOUNCED]
    with pytest.raises(BadSignature):
        await inbound.receive("postmark", encode(CHANGE), {})
    with pytest.raises(WebhookRejected) as info:
        await inbound.receive("brevo", encode(CHANGE), auth(CREDENTIALS))
    assert info.value.status == 404
    await inbound.aclose()
