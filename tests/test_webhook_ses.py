"""Amazon SES via SNS: real AWS-signed messages, generated certificates, subscriptions, events."""

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from newsletter.feedback.events import (
    BadSignature,
    EventKind,
    MalformedPayload,
    NotConfigured,
    StaleRequest,
    UnknownTopic,
    WebhookUnavailable,
)
from newsletter.feedback.times import from_iso
from newsletter.feedback.webhooks import ses, sns
from newsletter.feedback.webhooks.inbound import Inbound, WebhookSettings
from tests.replay_helpers import MemoryReplayGuard

VECTORS = json.loads((Path(__file__).parent / "data" / "feedback" / "sns-test-vectors.json")
                     .read_text(encoding="utf-8"))
TOPIC = "arn:aws:sns:us-east-1:123456789012:SES_Events"
FOREIGN = "arn:aws:sns:us-east-1:999999999999:Someone_Else"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000aaaa1111.pem"
NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
SIGNED = {"Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
          "SubscriptionConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp",
                                       "Token", "TopicArn", "Type"]}
SIGNED["UnsubscribeConfirmation"] = SIGNED["SubscriptionConfirmation"]


class Web:
    """An httpx MockTransport serving certificates by URL, recording every request."""

    def __init__(self, files=None, status=200):
        self.files, self.status, self.requests = dict(files or {}), status, []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request):
        self.requests.append(str(request.url))
        if str(request.url) in self.files:
            return httpx.Response(self.status, content=self.files[str(request.url)])
        return httpx.Response(200 if "Action=ConfirmSubscription" in str(request.url) else 404)


class Signer:
    """An RSA key and a self-signed certificate standing in for SNS's."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        self.pem = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                    .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(NOW - timedelta(days=1))
                    .not_valid_after(NOW + timedelta(days=365))
                    .sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))

    def sign(self, message, version="1"):
        # Written out here, independently of the module under test: key\nvalue\n in order.
        signed = "".join(f"{k}\n{message[k]}\n" for k in SIGNED[message["Type"]] if k in message)
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(signed.encode(), padding.PKCS1v15(), algorithm)
        return dict(message, SignatureVersion=version,
                    Signature=base64.b64encode(signature).decode(), SigningCertURL=CERT_URL)


@pytest.fixture(scope="module")
def signer():
    return Signer()


def notification(content, *, topic=TOPIC, message_id="19ba9823-d7f2-53c1-860e-cb10e0d13dfc",
                 when=NOW):
    return {"Type": "Notification", "MessageId": message_id, "TopicArn": topic,
            "Subject": "Amazon SES Email Event Notification",
            "Message": content if isinstance(content, str) else json.dumps(content,
                                                                            ensure_ascii=False),
            "Timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}


def confirmation(kind="SubscriptionConfirmation", *, topic=TOPIC, url=None):
    return {"Type": kind, "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37",
            "TopicArn": topic, "Message": "You have chosen to subscribe to the topic " + topic,
            "SubscribeURL": url or ("https://sns.us-east-1.amazonaws.com/?Action="
                                    f"ConfirmSubscription&TopicArn={topic}&Token=2336412f37"),
            "Timestamp": "2026-11-23T08:29:00.000Z"}


def body(message):
    return json.dumps(message, ensure_ascii=False).encode()


# AWS notification-examples "Bounce notification with a DSN", two recipients bounced
BOUNCE = {
    "notificationType": "Bounce",
    "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
               "reportingMTA": "dns; email.example.com",
               "bouncedRecipients": [
                   {"emailAddress": "jane@example.com", "status": "5.1.1", "action": "failed",
                    "diagnosticCode": "smtp; 550 5.1.1 <jane@example.com>... User"},
                   {"emailAddress": "josé@bücher.example", "status": "5.1.1", "action": "failed",
                    "diagnosticCode": "smtp; 550 5.1.1 “josé” unknown"}],
               "timestamp": "2016-01-27T14:59:38.237Z",
               "feedbackId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
               "remoteMtaIp": "127.0.2.0"},
    "mail": {"timestamp": "2016-01-27T14:59:38.237Z", "source": "john@example.com",
             "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
             "destination": ["jane@example.com", "josé@bücher.example"],
             "headersTruncated": False, "headers": [],
             "commonHeaders": {"messageId": "<2026-W47.42.0123456789@news.example.org>"},
             "tags": {"edition": ["2026-W47_0123456789ab"], "subscriber_id": ["42"],
                      "ses:configuration-set": ["newsletter"]}},
}
COMPLAINT = {
    "notificationType": "Complaint",
    "complaint": {"userAgent": "AnyCompany Feedback Loop (V0.01)",
                  "complainedRecipients": [{"emailAddress": "richard@example.com"}],
                  "complaintFeedbackType": "abuse", "arrivalDate": "2016-01-27T14:59:38.237Z",
                  "timestamp": "2016-01-27T14:59:38.237Z",
                  "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000"},
    "mail": {"messageId": "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
             "destination": ["jane@example.com", "mary@example.com", "richard@example.com"]},
}


@pytest.mark.parametrize("index", range(len(VECTORS["messages"])))
async def test_every_published_aws_signed_message_verifies(index):
    message = VECTORS["messages"][index]
    url = message.get("SigningCertURL") or message["SigningCertUrl"]
    web = Web({url: VECTORS["certificate_pem"].encode()})
    certificates = sns.Certificates(transport=web.transport)
    raw = body(message)
    now = from_iso(message["Timestamp"]) + timedelta(minutes=1)
    envelope = await sns.authenticate(raw, {"x-amz-sns-message-type": "Notification"},
                                      topic_arns=[message["TopicArn"]], certificates=certificates,
                                      now=now)
    assert envelope["MessageId"] == message["MessageId"]
    await sns.authenticate(raw, {}, topic_arns=message["TopicArn"], certificates=certificates,
                           now=now)
    assert web.requests == [url]  # fetched once, then cached
    altered = dict(message, Message="Hello world!")
    with pytest.raises(BadSignature):
        await sns.authenticate(body(altered), {}, topic_arns=[message["TopicArn"]],
                               certificates=certificates, now=now)
    await certificates.aclose()


def test_generated_messages_verify_in_both_versions_and_fail_when_altered(signer):
    key = sns.load_certificate(signer.pem)
    for version in ("1", "2"):
        message = signer.sign(notification(BOUNCE), version)
        sns.verify(message, key, topic_arns=[TOPIC], now=NOW)
        for field, value in (("Message", message["Message"].replace("Permanent", "Transient")),
                             ("TopicArn", TOPIC.replace("SES", "SEZ")),
                             ("Timestamp", "2026-11-23T08:30:01.000Z"),
                             ("SignatureVersion", "2" if version == "1" else "1"),
                             ("Signature", "AAAA" + message["Signature"][4:])):
            with pytest.raises((BadSignature, UnknownTopic)):
                sns.verify(dict(message, **{field: value}), key,
                           topic_arns=[TOPIC, TOPIC.replace("SES", "SEZ")], now=NOW)
    with pytest.raises(BadSignature, match="SignatureVersion"):
        sns.verify(dict(signer.sign(notification(BOUNCE)), SignatureVersion="3"), key,
                   topic_arns=[TOPIC], now=NOW)


def test_a_null_subject_counts_as_absent(signer):
    message = notification(BOUNCE)
    del message["Subject"]
    signed = signer.sign(message, "2")
    envelope = sns.read_envelope(body(dict(signed, Subject=None)), {})
    sns.verify(envelope, sns.load_certificate(signer.pem), topic_arns=[TOPIC], now=NOW)


def test_a_stale_timestamp_is_refused(signer):
    key = sns.load_certificate(signer.pem)
    message = signer.sign(notification(BOUNCE))
    sns.verify(message, key, topic_arns=[TOPIC], now=NOW + timedelta(hours=1))  # last SNS retry
    with pytest.raises(StaleRequest):
        sns.verify(message, key, topic_arns=[TOPIC], now=NOW + sns.TOLERANCE + timedelta(seconds=1))


@pytest.mark.parametrize("url", [
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
    "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem",
    "https://sns-certs.s3.amazonaws.com/SimpleNotificationService-1.pem",
    "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem",  # not the topic's region
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.crt",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem?x=.pem",
    "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-1.pem",
    "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
    "https://sns.us-east-1.amazonaws.com/a/../SimpleNotificationService-1.pem",
])
async def test_a_signing_cert_url_off_the_sns_host_is_refused_without_fetching(signer, url):
    web = Web({url: signer.pem})
    certificates = sns.Certificates(transport=web.transport)
    message = dict(signer.sign(notification(BOUNCE)), SigningCertURL=url)
    with pytest.raises(BadSignature, match="SigningCertURL"):
        await sns.authenticate(body(message), {}, topic_arns=[TOPIC], certificates=certificates,
                               now=NOW)
    assert web.requests == []
    await certificates.aclose()


async def test_an_unknown_topic_is_refused_before_anything_is_fetched(signer):
    web = Web({CERT_URL: signer.pem})
    certificates = sns.Certificates(transport=web.transport)
    message = signer.sign(notification(BOUNCE, topic=FOREIGN))
    with pytest.raises(UnknownTopic) as info:
        await sns.authenticate(body(message), {}, topic_arns=f"{TOPIC}, {TOPIC}2",
                               certificates=certificates, now=NOW)
    assert info.value.status == 403
    assert web.requests == []
    await certificates.aclose()


async def test_certificates_come_from_the_mirror_when_one_is_configured(signer, tmp_path):
    mirror = "https://mirror.internal/sns-certs/"
    name = CERT_URL.rsplit("/", 1)[1]
    web = Web({f"https://mirror.internal/sns-certs/{name}": signer.pem})
    certificates = sns.Certificates(base_url=mirror, transport=web.transport)
    message = signer.sign(notification(BOUNCE))
    await sns.authenticate(body(message), {}, topic_arns=[TOPIC], certificates=certificates,
                           now=NOW)
    assert web.requests == [f"https://mirror.internal/sns-certs/{name}"]
    await certificates.aclose()
    (tmp_path / "certs ü").mkdir()
    (tmp_path / "certs ü" / name).write_bytes(signer.pem)
    local = sns.Certificates(base_url=(tmp_path / "certs ü").as_uri())
    await sns.authenticate(body(message), {}, topic_arns=[TOPIC], certificates=local, now=NOW)
    await local.aclose()


@pytest.mark.parametrize("files", [{}, {CERT_URL: b"<html>not a certificate</html>"}])
async def test_a_certificate_that_cannot_be_had_is_a_503(signer, files):
    web = Web(files)
    certificates = sns.Certificates(transport=web.transport)
    with pytest.raises(WebhookUnavailable) as info:
        await sns.authenticate(body(signer.sign(notification(BOUNCE))), {}, topic_arns=[TOPIC],
                               certificates=certificates, now=NOW)
    assert info.value.status == 503
    await certificates.aclose()


def test_the_message_type_header_must_match_the_body(signer):
    raw = body(signer.sign(notification(BOUNCE)))
    with pytest.raises(MalformedPayload):
        sns.read_envelope(raw, {"X-Amz-Sns-Message-Type": "SubscriptionConfirmation"})
    with pytest.raises(MalformedPayload):
        sns.read_envelope(b'{"Type": "Notification"}', {})
    with pytest.raises(MalformedPayload):
        sns.read_envelope(b"Type=Notification", {})


def inbound_for(web, topics=(TOPIC,)):
    return Inbound(WebhookSettings(ses_sns_topic_arns=topics), replay=MemoryReplayGuard(),
                   transport=web.transport, clock=lambda: NOW)


async def test_a_subscription_to_an_allowed_topic_is_confirmed(signer):
    web = Web({CERT_URL: signer.pem})
    inbound = inbound_for(web)
    message = signer.sign(confirmation())
    received = await inbound.receive("ses", body(message), {})
    assert received.events == [] and received.confirmed == [TOPIC]
    assert web.requests == [CERT_URL, message["SubscribeURL"]]
    await inbound.aclose()


async def test_a_subscription_to_a_foreign_topic_is_refused_and_not_confirmed(signer):
    web = Web({CERT_URL: signer.pem})
    inbound = inbound_for(web)
    with pytest.raises(UnknownTopic):
        await inbound.receive("ses", body(signer.sign(confirmation(topic=FOREIGN))), {})
    assert web.requests == []
    await inbound.aclose()


async def test_a_subscribe_url_off_the_sns_host_is_never_visited(signer):
    web = Web({CERT_URL: signer.pem})
    inbound = inbound_for(web)
    message = signer.sign(confirmation(url="https://evil.example/?Action=ConfirmSubscription"))
    with pytest.raises(BadSignature, match="SubscribeURL"):
        await inbound.receive("ses", body(message), {})
    assert web.requests == [CERT_URL]
    await inbound.aclose()


async def test_a_failed_confirmation_is_a_503_so_sns_sends_it_again(signer):
    web = Web({CERT_URL: signer.pem})
    web.handle = lambda request: httpx.Response(403 if "Confirm" in str(request.url)
                                                else 200, content=signer.pem)
    web.transport = httpx.MockTransport(web.handle)
    inbound = inbound_for(web)
    with pytest.raises(WebhookUnavailable):
        await inbound.receive("ses", body(signer.sign(confirmation())), {})
    await inbound.aclose()


async def test_an_unsubscribe_confirmation_changes_nothing(signer):
    web = Web({CERT_URL: signer.pem})
    inbound = inbound_for(web)
    received = await inbound.receive(
        "ses", body(signer.sign(confirmation("UnsubscribeConfirmation"))), {})
    assert received.events == [] and received.confirmed == []
    assert web.requests == [CERT_URL]
    await inbound.aclose()


async def test_ses_without_topics_is_not_configured(signer):
    inbound = inbound_for(Web(), topics="")
    with pytest.raises(NotConfigured):
        await inbound.receive("ses", body(signer.sign(notification(BOUNCE))), {})
    await inbound.aclose()


async def test_inbound_bounce_with_several_recipients(signer):
    web = Web({CERT_URL: signer.pem})
    inbound = inbound_for(web)
    received = await inbound.receive("ses", body(signer.sign(notification(BOUNCE), "2")), {})
    assert [(e.recipient, e.kind, e.code) for e in received.events] == [
        ("jane@example.com", EventKind.BOUNCED, "5.1.1"),
        ("josé@bücher.example", EventKind.BOUNCED, "5.1.1")]
    jose = received.events[1]
    assert jose.reason == "smtp; 550 5.1.1 “josé” unknown"
    assert jose.message_id == "<2026-W47.42.0123456789@news.example.org>"
    assert jose.provider_message_id == BOUNCE["mail"]["messageId"]
    assert jose.metadata == {"edition": "2026-W47.0123456789ab", "subscriber_id": "42"}
    assert jose.occurred_at == datetime(2016, 1, 27, 14, 59, 38, 237000, UTC)
    assert len({e.event_id for e in received.events}) == 2
    await inbound.aclose()


def _parse(content):
    return ses.parse(body(notification(content)))


def _bounce(kind, sub):
    return dict(BOUNCE, bounce=dict(BOUNCE["bounce"], bounceType=kind, bounceSubType=sub))


@pytest.mark.parametrize(("content", "kinds"), [
    (_bounce("Permanent", "Suppressed"), [EventKind.REJECTED] * 2),
    (_bounce("Permanent", "OnAccountSuppressionList"), [EventKind.REJECTED] * 2),
    (_bounce("Transient", "MailboxFull"), [EventKind.DEFERRED] * 2),
    (_bounce("Undetermined", "Undetermined"), [EventKind.DEFERRED] * 2),
    (COMPLAINT, [EventKind.COMPLAINED]),
    ({**COMPLAINT, "notificationType": None, "eventType": "Complaint"}, [EventKind.COMPLAINED]),
    ({**COMPLAINT, "complaint": {**COMPLAINT["complaint"], "complaintFeedbackType": "not-spam"}},
     [EventKind.UNKNOWN]),
    ({"eventType": "Delivery", "mail": BOUNCE["mail"],
      "delivery": {"timestamp": "2026-11-23T08:00:00Z", "recipients": ["jane@example.com"],
                   "smtpResponse": "250 ok"}}, [EventKind.DELIVERED]),
    ({"eventType": "DeliveryDelay", "mail": BOUNCE["mail"],
      "deliveryDelay": {"timestamp": "2026-11-23T08:00:00Z", "delayType": "MailboxFull",
                        "delayedRecipients": [{"emailAddress": "jane@example.com",
                                               "status": "4.2.2"}]}}, [EventKind.DEFERRED]),
    ({"eventType": "Subscription", "mail": {**BOUNCE["mail"], "destination": ["a@example.com"]},
      "subscription": {"contactList": "News", "timestamp": "2026-11-23T08:00:00Z",
                       "newTopicPreferences": {"unsubscribeAll": True}}},
     [EventKind.UNSUBSCRIBED]),
    ({"eventType": "Open", "mail": {**BOUNCE["mail"], "destination": ["a@example.com"]},
      "open": {}}, [EventKind.UNKNOWN]),
])
def test_every_ses_event_maps_to_its_kind(content, kinds):
    assert [e.kind for e in _parse(content)] == kinds


def test_the_validation_notice_and_subscription_messages_carry_no_events():
    assert _parse(ses.VALIDATION_MESSAGE) == []
    assert ses.parse(body(confirmation())) == []
    with pytest.raises(MalformedPayload):
        _parse("not json")


def test_a_redelivered_notification_gives_the_same_event_ids():
    assert [e.event_id for e in _parse(BOUNCE)] == [e.event_id for e in _parse(BOUNCE)]
