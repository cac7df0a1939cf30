"""Mailgun webhooks: the HMAC of timestamp + token, single-use tokens, and every event kind."""

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from newsletter.feedback.events import (
    BadSignature,
    EventKind,
    MalformedPayload,
    NotConfigured,
    ReplayedRequest,
    StaleRequest,
)
from newsletter.feedback.webhooks import mailgun
from newsletter.feedback.webhooks.inbound import Inbound, WebhookSettings
from tests.replay_helpers import MemoryReplayGuard

# Computed in the research notes (1.2) with django-anymail's test values.
VECTOR = {"key": "TEST_WEBHOOK_SIGNING_KEY", "timestamp": "1234567890",
          "token": "1234567890abcdef1234567890abcdef",
          "signature": "3b754b7c269e4c08fb3f5f36b2b5f98e45245965522dc16ca4c9faa0b11b557d"}
KEY = "key-“signing”-ключ"
NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)

# anymail tests/test_mailgun_webhooks.py::test_failed_permanent_event, with our v: variables
FAILED = {
    "event": "failed", "severity": "permanent", "reason": "bounce", "id": "pl271FzxTTmGRW8Uj3dUWw",
    "recipient": "josé@bücher.example", "timestamp": 1534110422.389832, "log-level": "error",
    "message": {"headers": {"to": "josé@bücher.example",
                            "message-id": "20180812214658.1.0DF563D0B3597700@example.org",
                            "from": "Test Sender "}},
    "delivery-status": {"tls": True, "mx-host": "aspmx.l.example.org", "attempt-no": 1,
                        "description": "", "code": 550,
                        "message": "5.1.1 The email account that you tried to reach does not "
                                   "exist. Please try\n5.1.1 double-checking the recipient's email "
                                   "address for typos", "certificate-verified": True},
    "user-variables": {"edition": "2026-W47.0123456789ab", "subscriber_id": "42"},
}
# same file, test_complained_event
COMPLAINED = {"event": "complained", "id": "ncV2XwymRUKbPek_MIM-Gw", "timestamp": 1377214260.049634,
              "log-level": "warn", "recipient": "recipient@example.com",
              "message": {"headers": {"to": "foo@recipient.com",
                                      "message-id": "20130718032413.263EE2E0926@example.org",
                                      "from": "Sender Name <sender@example.org>",
                                      "subject": "We are not spammer"}}}


def signed(event_data, *, key=KEY, when=NOW, token=None):
    token = token or secrets.token_hex(25)
    timestamp = str(int(when.timestamp()))
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    body = {"signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event_data}
    return json.dumps(body, ensure_ascii=False).encode()


def verify(body, *, key=KEY, now=NOW, replay=None):
    mailgun.verify(body, {}, key, now=now,
                   replay=MemoryReplayGuard(clock=lambda: now) if replay is None else replay)


def test_the_research_vector_verifies():
    body = json.dumps({"signature": {k: VECTOR[k] for k in ("timestamp", "token", "signature")},
                       "event-data": COMPLAINED}).encode()
    verify(body, key=VECTOR["key"], now=datetime.fromtimestamp(1234567890, UTC))
    with pytest.raises(BadSignature) as info:
        verify(body, key=VECTOR["key"] + "x", now=datetime.fromtimestamp(1234567890, UTC))
    assert info.value.status == 406


def test_a_permanent_failure_is_a_bounce_with_our_variables():
    body = signed(FAILED)
    verify(body)
    [event] = mailgun.parse(body)
    assert event.kind == EventKind.BOUNCED
    assert event.recipient == "josé@bücher.example"
    assert event.code == "550"
    assert event.reason.startswith("bounce: 5.1.1 The email account")
    assert "\n" not in event.reason
    assert event.provider_message_id == "20180812214658.1.0DF563D0B3597700@example.org"
    assert event.message_id == "<20180812214658.1.0DF563D0B3597700@example.org>"
    assert event.metadata == {"edition": "2026-W47.0123456789ab", "subscriber_id": "42"}
    assert event.occurred_at == datetime.fromtimestamp(1534110422.389832, UTC)
    assert event.raw == FAILED


@pytest.mark.parametrize(("changes", "kind"), [
    ({"severity": "temporary", "reason": "greylisted"}, EventKind.DEFERRED),
    ({"reason": "suppress-bounce"}, EventKind.REJECTED),
    ({"reason": "generic", "delivery-status": {"code": 605, "message": "Not delivering to "
                                               "previously bounced address"}}, EventKind.REJECTED),
    ({"event": "unsubscribed"}, EventKind.UNSUBSCRIBED),
    ({"event": "rejected"}, EventKind.REJECTED),
    ({"event": "delivered"}, EventKind.DELIVERED),
    ({"event": "opened"}, EventKind.UNKNOWN),
])
def test_every_event_maps_to_its_kind(changes, kind):
    [event] = mailgun.parse(signed(dict(FAILED, **changes)))
    assert event.kind == kind


def test_a_complaint():
    [event] = mailgun.parse(signed(COMPLAINED))
    assert event.kind == EventKind.COMPLAINED
    assert event.recipient == "recipient@example.com"
    assert event.event_id.startswith("ncV2XwymRUKbPek_MIM-Gw@")


def test_a_token_is_good_for_one_event_but_a_retry_of_that_event_passes():
    guard = MemoryReplayGuard(clock=lambda: NOW)
    body = signed(FAILED, token="t" * 50)
    verify(body, replay=guard)
    verify(body, replay=guard)  # Mailgun retrying after we answered 5xx
    assert mailgun.parse(body)[0].event_id == mailgun.parse(body)[0].event_id
    # the body is not signed: the same signature block with another event inside is a replay
    forged = json.loads(body)
    forged["event-data"]["recipient"] = "someone-else@example.com"
    with pytest.raises(ReplayedRequest) as info:
        verify(json.dumps(forged).encode(), replay=guard)
    assert info.value.status == 406


def test_altered_signature_wrong_key_and_missing_block_are_406():
    body = json.loads(signed(FAILED))
    sig = body["signature"]["signature"]
    body["signature"]["signature"] = sig[:-1] + ("1" if sig[-1] == "0" else "0")
    for bad in (json.dumps(body).encode(), b'{"event-data": {}}', b"token=abc&timestamp=1"):
        with pytest.raises((BadSignature, MalformedPayload)) as info:
            verify(bad)
        assert info.value.status == 406
    with pytest.raises(BadSignature):
        verify(signed(FAILED, key="another key"))


@pytest.mark.parametrize("skew", [timedelta(hours=12, seconds=1), -timedelta(hours=12, seconds=1)])
def test_a_timestamp_outside_twelve_hours_is_stale(skew):
    body = signed(FAILED)
    verify(body, now=NOW + timedelta(hours=8))  # Mailgun's last retry, 8 hours on
    with pytest.raises(StaleRequest) as info:
        verify(body, now=NOW + skew)
    assert info.value.status == 406


def test_no_signing_key_configured_refuses_with_406():
    with pytest.raises(NotConfigured) as info:
        verify(signed(FAILED), key="  ")
    assert info.value.status == 406


async def test_inbound_refuses_a_replay_with_406():
    inbound = Inbound(WebhookSettings(mailgun_webhook_signing_key=KEY),
                      replay=MemoryReplayGuard(clock=lambda: NOW), clock=lambda: NOW)
    body = signed(FAILED, token="r" * 50)
    [event] = (await inbound.receive("mailgun", body, {"Content-Type": "application/json"})).events
    assert event.kind == EventKind.BOUNCED
    forged = body.replace("josé".encode(), b"jose")
    with pytest.raises(ReplayedRequest):
        await inbound.receive("mailgun", forged, {})
    await inbound.aclose()
