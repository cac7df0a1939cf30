"""Resend (Svix) webhooks: the Standard Webhooks golden vector, rotation, and every event kind."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from newsletter.errors import ConfigError
from newsletter.feedback.events import BadSignature, EventKind, NotConfigured, StaleRequest
from newsletter.feedback.webhooks import resend
from newsletter.feedback.webhooks.inbound import Inbound, WebhookSettings
from tests.replay_helpers import MemoryReplayGuard

# Svix src/webhook.test.ts / the Standard Webhooks reference vector (research notes 1.3)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = "1614265330"
VECTOR_NOW = datetime.fromtimestamp(1614265330, UTC)
GOLDEN = (b'{"test": 2432232314}', "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
# computed in the research notes with the same secret, id and timestamp
BOUNCED_VECTOR = (
    b'{"type":"email.bounced","created_at":"2023-10-02T18:11:26.101Z","data":{"email_id":'
    b'"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee","to":["bounced@resend.dev"]}}',
    "v1,v7OQkUW5a8YyV2o2GL3GiYikOQ05fGMonIDtCfS0xTU=")

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
# anymail tests/test_resend_webhooks.py::test_hard_bounced_event, with type/subType per the spec
# and our tags
BOUNCED = {
    "type": "email.bounced", "created_at": "2023-10-02T18:11:26.101Z",
    "data": {"email_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
             "created_at": "2023-10-02T18:11:25.729Z", "from": "Sender <from@example.com>",
             "to": ["josé@bücher.example"], "subject": "Sending test",
             "tags": {"edition": "2026-W47_0123456789ab", "subscriber_id": "42"},
             "bounce": {"type": "Permanent", "subType": "General",
                        "diagnosticCode": ["smtp; 550 5.1.1 user unknown"],
                        "message": "The recipient's email provider sent a hard bounce message."}},
}
COMPLAINED = {"type": "email.complained", "created_at": "2023-10-02T18:10:03.690Z",
              "data": {"email_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                       "created_at": "2023-10-02T18:10:03.241Z",
                       "from": "Sender <from@example.com>",
                       "to": ["complained@resend.dev"], "subject": "Sending test"}}


def sign(body: bytes, *, secret=SECRET, msg_id="msg_1", when=NOW, prefix="svix"):
    timestamp = str(int(when.timestamp()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.digest(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return {f"{prefix}-id": msg_id, f"{prefix}-timestamp": timestamp,
            f"{prefix}-signature": "v1," + base64.b64encode(mac).decode()}


def encode(payload) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def vector_headers(signature):
    return {"svix-id": MSG_ID, "svix-timestamp": TIMESTAMP, "svix-signature": signature}


@pytest.mark.parametrize(("body", "signature"), [GOLDEN, BOUNCED_VECTOR],
                         ids=["golden", "bounced"])
def test_published_vectors_verify(body, signature):
    resend.verify(body, vector_headers(signature), SECRET, now=VECTOR_NOW)
    with pytest.raises(BadSignature):
        resend.verify(body + b" ", vector_headers(signature), SECRET, now=VECTOR_NOW)


def test_the_bounced_vector_without_a_bounce_type_is_not_taken_as_permanent():
    [event] = resend.parse(BOUNCED_VECTOR[0], vector_headers(BOUNCED_VECTOR[1]))
    assert event.kind == EventKind.DEFERRED
    assert event.event_id == MSG_ID
    assert event.recipient == "bounced@resend.dev"


def test_any_of_several_signatures_and_any_of_several_secrets_pass():
    body = encode(BOUNCED)
    good = sign(body)
    rotated = dict(good, **{"svix-signature": f"v1,AAAA v2,xyz {good['svix-signature']}"})
    resend.verify(body, rotated, SECRET, now=NOW)
    other = "whsec_" + base64.b64encode(b"another secret of 24 by").decode()
    resend.verify(body, good, [other, SECRET], now=NOW)
    resend.verify(body, good, f"{other}, {SECRET}", now=NOW)
    with pytest.raises(BadSignature):
        resend.verify(body, good, other, now=NOW)


def test_white_label_headers_are_the_same_scheme():
    body = encode(COMPLAINED)
    resend.verify(body, sign(body, prefix="webhook"), SECRET, now=NOW)
    [event] = resend.parse(body, sign(body, prefix="webhook", msg_id="msg_w"))
    assert event.event_id == "msg_w"


def test_altered_body_altered_signature_and_missing_headers_are_refused():
    body = encode(BOUNCED)
    headers = sign(body)
    with pytest.raises(BadSignature):
        resend.verify(body.replace(b"Permanent", b"Transient"), headers, SECRET, now=NOW)
    sig = headers["svix-signature"]
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    with pytest.raises(BadSignature):
        resend.verify(body, dict(headers, **{"svix-signature": flipped}), SECRET, now=NOW)
    with pytest.raises(BadSignature):  # the signature is bound to the id too
        resend.verify(body, dict(headers, **{"svix-id": "msg_2"}), SECRET, now=NOW)
    for name in ("svix-id", "svix-timestamp", "svix-signature"):
        with pytest.raises(BadSignature, match="missing"):
            resend.verify(body, {k: v for k, v in headers.items() if k != name}, SECRET, now=NOW)


@pytest.mark.parametrize("skew", [timedelta(minutes=5, seconds=1),
                                  -timedelta(minutes=5, seconds=1)])
def test_five_minutes_either_way(skew):
    body = encode(BOUNCED)
    headers = sign(body)
    resend.verify(body, headers, SECRET, now=NOW + skew / 2)
    with pytest.raises(StaleRequest):
        resend.verify(body, headers, SECRET, now=NOW + skew)


def test_no_secret_refuses_and_a_malformed_secret_is_a_config_error():
    body = encode(BOUNCED)
    with pytest.raises(NotConfigured):
        resend.verify(body, sign(body), "", now=NOW)
    with pytest.raises(ConfigError, match="resend_webhook_secret"):
        resend.verify(body, sign(body), "whsec_!!!", now=NOW)


def test_a_hard_bounce_with_our_tags():
    body = encode(BOUNCED)
    [event] = resend.parse(body, sign(body, msg_id="msg_b"))
    assert event.kind == EventKind.BOUNCED
    assert event.recipient == "josé@bücher.example"
    assert event.code == "5.1.1"
    assert event.reason == "General: smtp; 550 5.1.1 user unknown"
    assert event.metadata == {"edition": "2026-W47.0123456789ab", "subscriber_id": "42"}
    assert event.provider_message_id == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    assert event.occurred_at == datetime(2023, 10, 2, 18, 11, 26, 101000, UTC)
    assert event.event_id == "msg_b"  # a resent event keeps its svix-id, so it is stored once


def _with(kind_name, **data):
    return {"type": kind_name, "created_at": "2026-11-23T08:00:00Z",
            "data": {"email_id": "e1", "to": ["a@example.com"], **data}}


@pytest.mark.parametrize(("payload", "kind"), [
    (COMPLAINED, EventKind.COMPLAINED),
    (_with("email.bounced", bounce={"type": "Transient", "subType": "MailboxFull",
                                    "diagnosticCode": [], "message": "full"}), EventKind.DEFERRED),
    (_with("email.bounced", bounce={"type": "Permanent", "subType": "Suppressed",
                                    "diagnosticCode": [], "message": "Resend has suppressed "
                                    "sending to this address because it is on the account-level "
                                    "suppression list."}), EventKind.REJECTED),
    (_with("email.suppressed", suppressed={"type": "OnAccountSuppressionList",
                                           "reason": "previous_bounce", "message": "",
                                           "diagnosticCode": []}), EventKind.REJECTED),
    (_with("email.delivery_delayed"), EventKind.DEFERRED),
    (_with("email.delivered"), EventKind.DELIVERED),
    (_with("email.opened"), EventKind.UNKNOWN),
    (_with("email.failed", failed={"reason": "reached_daily_quota"}), EventKind.UNKNOWN),
    ({"type": "contact.updated", "created_at": "2026-11-23T08:00:00Z",
      "data": {"id": "c1", "email": "a@example.com", "unsubscribed": True,
               "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-11-23T08:00:00Z"}},
     EventKind.UNSUBSCRIBED),
])
def test_every_event_maps_to_its_kind(payload, kind):
    [event] = resend.parse(encode(payload), {"svix-id": "msg_k"})
    assert event.kind == kind
    assert event.recipient == "a@example.com" or payload is COMPLAINED


async def test_inbound_round_trip():
    inbound = Inbound(WebhookSettings(resend_webhook_secret=SECRET), replay=MemoryReplayGuard(),
                      clock=lambda: NOW)
    body = encode(BOUNCED)
    received = await inbound.receive("resend", body, sign(body, msg_id="msg_i"))
    assert [(e.kind, e.event_id) for e in received.events] == [(EventKind.BOUNCED, "msg_i")]
    await inbound.aclose()
