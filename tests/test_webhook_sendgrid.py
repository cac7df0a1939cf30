"""SendGrid Event Webhook: the official test vector, generated keys, and every event kind."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.errors import ConfigError
from newsletter.feedback.events import (
    BadSignature,
    EventKind,
    MalformedPayload,
    NotConfigured,
    StaleRequest,
)
from newsletter.feedback.webhooks import sendgrid
from newsletter.feedback.webhooks.inbound import Inbound, WebhookSettings
from tests.replay_helpers import MemoryReplayGuard

# sendgrid/sendgrid-python test/unit/test_eventwebhook.py (research notes 1.1)
VECTOR_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1fl"
              "pVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==")
VECTOR_WRONG_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDu"
                    "tdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==")
VECTOR_SIGNATURE = ("MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQA"
                    "bPIqHh89M15TluLtEZtM=")
VECTOR_TIMESTAMP = "1600112502"
VECTOR_PAYLOAD = (
    b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address","sg_event_id":'
    b'"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA","sg_message_id":"LRzXl_NHStOGhQ4k'
    b'ofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","smtp-id":"<LRzXl_NHStOGhQ4k'
    b'ofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]\r\n'
)
VECTOR_NOW = datetime.fromtimestamp(1600112502, UTC)


def vector_headers(signature=VECTOR_SIGNATURE, timestamp=VECTOR_TIMESTAMP):
    return {sendgrid.SIGNATURE_HEADER: signature, sendgrid.TIMESTAMP_HEADER: timestamp}


class Signer:
    """A key pair like SendGrid's: signs ``timestamp + body``; public half as SendGrid shows it."""

    def __init__(self):
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int, *, lower=False):
        signature = self.private.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
        headers = {sendgrid.SIGNATURE_HEADER: base64.b64encode(signature).decode(),
                   sendgrid.TIMESTAMP_HEADER: str(timestamp)}
        return {k.lower(): v for k, v in headers.items()} if lower else headers


NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
TS = int(NOW.timestamp())

# anymail tests/test_sendgrid_webhooks.py::test_bounce_event, with our custom args merged in
BOUNCE = {
    "ip": "167.89.17.173", "status": "5.1.1",
    "smtp-id": "<wrfRRvF7Q0GgwUo2CvDmEA@ismtpd0006p1sjc2.sendgrid.net>",
    "sg_event_id": "lC0Rc-FuQmKbnxCWxX1jRQ",
    "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
    "sg_message_id": "Lli-03HcQ5-JLybO9fXsJg.filter0077p1las1.21536.5717FC482.0", "tls": 1,
    "event": "bounce", "email": "josé@bücher.example", "timestamp": 1461095250, "type": "bounce",
    "edition": "2026-W47.0123456789ab", "subscriber_id": "42",
}
# the spam report example of SendGrid's event reference
SPAMREPORT = {"email": "example@test.com", "timestamp": 1513299569,
              "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "event": "spamreport",
              "category": "cat facts", "sg_event_id": "sg_event_id",
              "sg_message_id": "sg_message_id"}


def body_of(*events) -> bytes:
    return json.dumps(list(events), ensure_ascii=False).encode()


def test_official_vector_verifies_and_reads_as_a_rejection():
    sendgrid.verify(VECTOR_PAYLOAD, vector_headers(), VECTOR_KEY, now=VECTOR_NOW)
    [event] = sendgrid.parse(VECTOR_PAYLOAD)
    assert event.kind == EventKind.REJECTED  # dropped: SendGrid already suppresses the address
    assert event.reason == "Bounced Address"
    assert event.recipient == "hello@world.com"
    assert event.event_id == "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA"
    assert event.provider_message_id == "LRzXl_NHStOGhQ4kofSm_A"  # the send's X-Message-Id
    assert event.occurred_at == datetime.fromtimestamp(1600112492, UTC)


@pytest.mark.parametrize("change", [
    {"key": VECTOR_WRONG_KEY},
    {"body": b"payload"},
    {"body": VECTOR_PAYLOAD.rstrip(b"\r\n")},  # the trailing CRLF is part of what was signed
    {"headers": vector_headers(timestamp="timestamp")},
    {"headers": vector_headers(timestamp="1600112503")},
    {"headers": vector_headers(signature=VECTOR_SIGNATURE[:-8] + "AAAAAAA=")},
    {"headers": vector_headers(signature="not base64!")},
], ids=["wrong key", "other body", "body without CRLF", "bad timestamp", "other timestamp",
        "altered signature", "garbage signature"])
def test_official_vector_altered_in_any_way_is_refused(change):
    with pytest.raises(BadSignature) as info:
        sendgrid.verify(change.get("body", VECTOR_PAYLOAD), change.get("headers", vector_headers()),
                        change.get("key", VECTOR_KEY), now=VECTOR_NOW)
    assert info.value.status == 403


def test_generated_key_signs_a_batch_with_non_ascii_values_and_lower_case_headers():
    signer = Signer()
    odd = dict(BOUNCE, reason="550 5.1.1 “José” — mailbox\u2028unknown 📭", sg_event_id="e-2")
    body = body_of(BOUNCE, odd)
    sendgrid.verify(body, signer.headers(body, TS, lower=True), signer.public, now=NOW)
    events = sendgrid.parse(body)
    assert [e.event_id for e in events] == ["lC0Rc-FuQmKbnxCWxX1jRQ", "e-2"]
    bounce = events[0]
    assert bounce.kind == EventKind.BOUNCED
    assert bounce.recipient == "josé@bücher.example"
    assert bounce.code == "5.1.1"
    assert bounce.metadata == {"edition": "2026-W47.0123456789ab", "subscriber_id": "42"}
    assert bounce.provider_message_id == "Lli-03HcQ5-JLybO9fXsJg"
    assert bounce.message_id == "<wrfRRvF7Q0GgwUo2CvDmEA@ismtpd0006p1sjc2.sendgrid.net>"
    assert bounce.raw == BOUNCE
    assert events[1].reason == "550 5.1.1 “José” — mailbox unknown 📭"  # one line


def test_altered_body_and_altered_signature_are_refused():
    signer = Signer()
    body = body_of(BOUNCE)
    headers = signer.headers(body, TS)
    with pytest.raises(BadSignature):
        sendgrid.verify(body.replace(b"bounce", b"delivered"), headers, signer.public, now=NOW)
    raw = bytearray(base64.b64decode(headers[sendgrid.SIGNATURE_HEADER]))
    raw[-1] ^= 1
    altered = dict(headers, **{sendgrid.SIGNATURE_HEADER: base64.b64encode(bytes(raw)).decode()})
    with pytest.raises(BadSignature):
        sendgrid.verify(body, altered, signer.public, now=NOW)
    with pytest.raises(BadSignature):  # another key pair's signature
        sendgrid.verify(body, Signer().headers(body, TS), signer.public, now=NOW)


@pytest.mark.parametrize("skew", [sendgrid.TOLERANCE + timedelta(seconds=1),
                                  -(sendgrid.TOLERANCE + timedelta(seconds=1))])
def test_a_timestamp_outside_the_window_is_stale(skew):
    signer = Signer()
    body = body_of(BOUNCE)
    headers = signer.headers(body, TS)
    sendgrid.verify(body, headers, signer.public, now=NOW + skew / 2)
    with pytest.raises(StaleRequest):
        sendgrid.verify(body, headers, signer.public, now=NOW + skew)


def test_missing_headers_missing_key_and_a_malformed_key():
    signer = Signer()
    body = body_of(BOUNCE)
    with pytest.raises(BadSignature, match="missing"):
        sendgrid.verify(body, {}, signer.public, now=NOW)
    with pytest.raises(NotConfigured) as info:
        sendgrid.verify(body, signer.headers(body, TS), "", now=NOW)
    assert info.value.status == 403
    with pytest.raises(ConfigError, match="sendgrid_webhook_public_key"):
        sendgrid.verify(body, signer.headers(body, TS), "bm90IGEga2V5", now=NOW)
    rsa_like = base64.b64encode(ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    with pytest.raises(ConfigError, match="P-256"):
        sendgrid.verify(body, signer.headers(body, TS), rsa_like, now=NOW)


@pytest.mark.parametrize(("event", "kind"), [
    (BOUNCE, EventKind.BOUNCED),
    (dict(BOUNCE, type="blocked", sg_event_id="b"), EventKind.DEFERRED),
    (SPAMREPORT, EventKind.COMPLAINED),
    ({"event": "deferred", "email": "a@example.com", "response": "451 try later",
      "attempt": "2", "timestamp": 1, "sg_event_id": "d"}, EventKind.DEFERRED),
    ({"event": "delivered", "email": "a@example.com", "timestamp": 1, "sg_event_id": "v"},
     EventKind.DELIVERED),
    ({"event": "unsubscribe", "email": "a@example.com", "timestamp": 1}, EventKind.UNSUBSCRIBED),
    ({"event": "group_unsubscribe", "email": "a@example.com", "timestamp": 1},
     EventKind.UNSUBSCRIBED),
    ({"event": "open", "email": "a@example.com", "timestamp": 1}, EventKind.UNKNOWN),
])
def test_every_event_maps_to_its_kind(event, kind):
    [parsed] = sendgrid.parse(body_of(event))
    assert parsed.kind == kind
    if kind == EventKind.DEFERRED and "response" in event:
        assert parsed.reason == "451 try later"


def test_a_repeated_batch_gives_the_same_ids_and_events_without_ids_get_distinct_digests():
    plain = [{"event": "unsubscribe", "email": f"r{i}@example.com", "timestamp": 1}
             for i in range(2)]
    first, again = sendgrid.parse(body_of(*plain)), sendgrid.parse(body_of(*plain))
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert first[0].event_id != first[1].event_id


def test_a_body_that_is_not_a_json_array_is_a_400():
    with pytest.raises(MalformedPayload) as info:
        sendgrid.parse(b'{"event": "bounce"}')
    assert info.value.status == 400
    with pytest.raises(MalformedPayload):
        sendgrid.parse(b"\xff\xfe not json")
    [odd] = sendgrid.parse(b'[17]')  # one odd element does not lose the rest of a batch
    assert odd.kind == EventKind.UNKNOWN


async def test_inbound_verifies_then_parses():
    signer = Signer()
    inbound = Inbound(WebhookSettings(sendgrid_webhook_public_key=signer.public),
                      replay=MemoryReplayGuard(), clock=lambda: NOW)
    body = body_of(BOUNCE, SPAMREPORT)
    received = await inbound.receive("sendgrid", body, signer.headers(body, TS))
    assert [e.kind for e in received.events] == [EventKind.BOUNCED, EventKind.COMPLAINED]
    with pytest.raises(BadSignature):
        await inbound.receive("sendgrid", body + b" ", signer.headers(body, TS))
    unconfigured = Inbound(WebhookSettings(), replay=MemoryReplayGuard(), clock=lambda: NOW)
    with pytest.raises(NotConfigured):
        await unconfigured.receive("sendgrid", body, signer.headers(body, TS))
    await inbound.aclose()
    await unconfigured.aclose()
