"""SendGrid Event Webhook: ECDSA P-256 over timestamp + raw body; a JSON array of events.

Spec: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
(headers ``X-Twilio-Email-Event-Webhook-Signature``, base64 of a DER ECDSA signature, and
``-Timestamp``, Unix seconds; the verification key is base64 of a DER SubjectPublicKeyInfo);
event reference: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event .
Reference implementation and test vector: sendgrid/sendgrid-python
``sendgrid/helpers/eventwebhook``.

SendGrid documents no timestamp tolerance and retries failed deliveries for up to 24 hours; it
does not say whether a retry is signed afresh. The body is signed and every event carries
``sg_event_id``, so a replay can only repeat events the log already holds: the window is wide
(25 hours) rather than risk refusing a legitimate late retry.

Kinds: ``bounce`` is ``bounced`` (SendGrid then suppresses the address itself) except
``type: blocked``, a reputation or content block, which is ``deferred``; ``dropped`` is
``rejected`` (SendGrid did not try: the address is on one of its suppression lists);
``spamreport`` is ``complained``; ``unsubscribe`` and ``group_unsubscribe`` are
``unsubscribed``; ``deferred`` and ``delivered`` as named; ``processed`` (SendGrid took the
message for sending) is ``accepted``, which resolves a send's ``unknown`` rows
(``delivery.reconcile_events``); everything else ``unknown``. Custom args arrive merged into
each event, which is where ``edition`` and ``subscriber_id`` are: an ``accepted`` event of a
request whose answer was lost is matched by them, as the ledger holds no message id for it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Mapping
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ...clock import utc_now
from ...errors import ConfigError
from .. import ids
from ..events import BadSignature, Event, EventKind, NotConfigured, UnusablePayload, digest_id
from ..times import from_unix
from ._common import check_window, header, load_json, text
from .hook import Webhook

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
TOLERANCE = timedelta(hours=25)
# The only batched webhook: SendGrid posts a batch every 30 seconds or once it reaches 768 KB
# (the Event Webhook's getting-started page), so a batch can pass 768 KB by the event that
# filled it: 1 MiB.
MAX_BODY = 1024 * 1024

_KINDS = {
    "processed": EventKind.ACCEPTED,
    "delivered": EventKind.DELIVERED,
    "deferred": EventKind.DEFERRED,
    "dropped": EventKind.REJECTED,
    "spamreport": EventKind.COMPLAINED,
    "unsubscribe": EventKind.UNSUBSCRIBED,
    "group_unsubscribe": EventKind.UNSUBSCRIBED,
}


@functools.lru_cache(maxsize=8)
def load_public_key(key: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER, PEM armour tolerated)."""
    body = "".join(line for line in key.strip().splitlines() if not line.startswith("-----"))
    try:
        public = load_der_public_key(base64.b64decode(body, validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise ConfigError("sendgrid_webhook_public_key: not a base64 DER public key") from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise ConfigError("sendgrid_webhook_public_key: not an ECDSA P-256 key")
    return public


def verify(body: bytes, headers: Mapping[str, str], public_key: str, *, now: datetime,
           tolerance: timedelta = TOLERANCE) -> None:
    """Raise unless ``body`` was signed by the holder of ``public_key`` within ``tolerance``."""
    precheck(headers, public_key, now=now, tolerance=tolerance)
    key = load_public_key(public_key.strip())
    signature, timestamp = header(headers, SIGNATURE_HEADER), header(headers, TIMESTAMP_HEADER)
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise BadSignature("sendgrid webhook: signature does not match") from None


def precheck(headers: Mapping[str, str], public_key: str, *, now: datetime,
             tolerance: timedelta = TOLERANCE) -> None:
    """What the headers alone can refuse, before the body is read: no key configured, no
    signature, a timestamp that is not Unix seconds or is outside ``tolerance``."""
    if not public_key.strip():
        raise NotConfigured("sendgrid webhook: sendgrid_webhook_public_key is not set")
    signature, timestamp = header(headers, SIGNATURE_HEADER), header(headers, TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise BadSignature(f"sendgrid webhook: {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} missing")
    signed_at = from_unix(timestamp) if timestamp.isascii() and timestamp.isdigit() else None
    if signed_at is None:
        raise BadSignature(f"sendgrid webhook: {TIMESTAMP_HEADER} is not Unix seconds")
    check_window(signed_at, now, tolerance, PROVIDER)


def parse(body: bytes, *, received_at: datetime | None = None) -> list[Event]:
    """Every event of the batch, in order."""
    payload = load_json(body, PROVIDER)
    if not isinstance(payload, list):
        raise UnusablePayload("sendgrid webhook: the body is not a JSON array of events")
    received = received_at or utc_now()
    return [_event(item, received) for item in payload]


def _event(item: object, received: datetime) -> Event:
    if not isinstance(item, dict):
        return Event(PROVIDER, EventKind.UNKNOWN, digest_id(PROVIDER, item), "", received,
                     reason="not an event object", raw=json.dumps(item))
    name = text(item.get("event"))
    kind = _KINDS.get(name, EventKind.UNKNOWN)
    if name == "bounce":
        kind = EventKind.DEFERRED if item.get("type") == "blocked" else EventKind.BOUNCED
    reason = text(item.get("reason")) or text(item.get("response"))
    if name == "bounce" and item.get("bounce_classification"):
        reason = f"{text(item['bounce_classification'])}: {reason}".rstrip(": ")
    return Event(
        provider=PROVIDER,
        kind=kind,
        event_id=text(item.get("sg_event_id")) or digest_id(PROVIDER, item),
        recipient=text(item.get("email")),
        occurred_at=from_unix(item.get("timestamp")) or received,
        reason=reason or ("" if kind != EventKind.UNKNOWN else f"sendgrid event {name!r}"),
        code=text(item.get("status")),
        provider_message_id=_request_id(text(item.get("sg_message_id"))),
        message_id=ids.angle(item.get("smtp-id")),
        metadata=ids.metadata_from(item),
        raw=item,
    )


def _request_id(sg_message_id: str) -> str:
    # sg_message_id is the X-Message-Id the send request was answered with, followed by
    # ".filter..." naming the SendGrid host that processed it.
    return sg_message_id.split(".filter", 1)[0]


WEBHOOK = Webhook(
    max_body=MAX_BODY,
    precheck=lambda headers, s, now: precheck(headers, s.sendgrid_webhook_public_key, now=now),
    verify=lambda body, headers, s, now, replay: verify(
        body, headers, s.sendgrid_webhook_public_key, now=now),
    parse=lambda body, headers, now: parse(body, received_at=now),
    keep_unusable=True)
