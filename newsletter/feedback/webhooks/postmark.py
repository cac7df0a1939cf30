"""Postmark webhooks: no signatures, HTTP Basic credentials in the webhook URL.

Spec: https://postmarkapp.com/developer/webhooks/webhooks-overview (Basic auth as
``https://user:password@host/path``); payloads:
https://postmarkapp.com/developer/webhooks/bounce-webhook,
.../spam-complaint-webhook, .../subscription-change-webhook, .../delivery-webhook.
The Bounce and SpamComplaint webhooks serve transactional streams only; a newsletter on a
Broadcast stream hears of bounces and complaints through SubscriptionChange, so both are read.

``postmark_webhook_auth`` is ``user:password`` or several (a list or comma-separated, for
rotation); the request's credentials are compared with every one in constant time.

Kinds (keyed on ``RecordType`` and ``Type``, never ``TypeCode``, which Postmark's own examples
contradict): a hard bounce, a bad address, or any bounce that made Postmark deactivate the
address (``Inactive``) is ``bounced``; ``SpamComplaint`` is ``complained``;
``ManuallyDeactivated`` is ``rejected``; soft bounces, DNS errors, blocks and spam or virus
notifications are ``deferred``; ``Unsubscribe`` is ``unsubscribed``. A SubscriptionChange that
suppresses sending is ``bounced`` (HardBounce), ``complained`` (SpamComplaint), or, for a
ManualSuppression, ``unsubscribed`` when the recipient did it and ``rejected`` when the account
did; a reactivation is ``unknown`` (nothing re-subscribes an address automatically).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ...clock import utc_now
from .. import ids
from ..events import BadSignature, Event, EventKind, NotConfigured, UnusablePayload, digest_id
from ..times import from_iso
from ._common import header, load_json, secrets_list, text
from .hook import Webhook

PROVIDER = "postmark"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="newsletter webhooks", charset="UTF-8"'}
_BOUNCED = {"HardBounce", "BadEmailAddress"}
_DEFERRED = {"Transient", "SoftBounce", "DnsError", "SpamNotification", "VirusNotification",
             "Blocked", "DMARCPolicy"}
_BOUNCE_TYPES = {"ManuallyDeactivated": EventKind.REJECTED, "SpamComplaint": EventKind.COMPLAINED,
                 "Unsubscribe": EventKind.UNSUBSCRIBED}
_SUPPRESSION = {"HardBounce": EventKind.BOUNCED, "SpamComplaint": EventKind.COMPLAINED}


# One record per request (Bounce, SpamComplaint, SubscriptionChange, Delivery: the webhook pages
# above). The only large field is ``Content``, the raw bounce or complaint report, present when
# the webhook has "include content" on; a report quotes at most the message we sent, and
# preflight warns past 102 KB of HTML, so 1 MiB holds one quoted whole, JSON-escaped, with room.
MAX_BODY = 1024 * 1024


def verify(body: bytes, headers: Mapping[str, str], credentials: str | Sequence[str]) -> None:
    """Raise unless the request carries one of the configured ``user:password`` pairs."""
    del body  # Postmark signs nothing; the credentials are all there is
    precheck(headers, credentials)


def precheck(headers: Mapping[str, str], credentials: str | Sequence[str]) -> None:
    """The whole check, from the headers alone: run before a byte of the body is read."""
    allowed = [c.encode("utf-8") for c in secrets_list(credentials)]
    if not allowed:
        raise NotConfigured("postmark webhook: postmark_webhook_auth is not set")
    scheme, _, value = header(headers, "Authorization").partition(" ")
    if scheme.lower() != "basic" or not value:
        raise BadSignature("postmark webhook: no Basic credentials", status=401,
                           headers=CHALLENGE)
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        given = b""
    # Every configured pair is compared, so the time taken does not reveal which one matched.
    if not any([hmac.compare_digest(given, pair) for pair in allowed]):
        raise BadSignature("postmark webhook: credentials do not match", status=401,
                           headers=CHALLENGE)


def parse(body: bytes, *, received_at: datetime | None = None) -> list[Event]:
    payload = load_json(body, PROVIDER)
    if not isinstance(payload, dict) or not isinstance(payload.get("RecordType"), str):
        raise UnusablePayload("postmark webhook: not a Postmark record")
    record = payload["RecordType"]
    kind, reason, code = _classify(record, payload)
    when = payload.get("ChangedAt") or payload.get("BouncedAt") or payload.get("DeliveredAt") \
        or payload.get("ReceivedAt")
    bounce_id = text(payload.get("ID"))
    return [Event(
        provider=PROVIDER,
        kind=kind,
        event_id=f"{record}:{bounce_id}" if bounce_id else digest_id(PROVIDER, payload),
        recipient=text(payload.get("Recipient")) or text(payload.get("Email")),
        occurred_at=from_iso(when) or received_at or utc_now(),
        reason=reason,
        code=code,
        provider_message_id=text(payload.get("MessageID")),
        metadata=ids.metadata_from(payload.get("Metadata")),
        raw=payload,
    )]


def _classify(record: str, payload: dict[str, Any]) -> tuple[EventKind, str, str]:
    if record == "SubscriptionChange":
        why = text(payload.get("SuppressionReason"))
        if payload.get("SuppressSending") is not True:
            return EventKind.UNKNOWN, "reactivated", ""
        if why == "ManualSuppression":
            by = text(payload.get("Origin"))
            kind = EventKind.UNSUBSCRIBED if by == "Recipient" else EventKind.REJECTED
            return kind, f"ManualSuppression by {by or 'unknown'}", why
        return _SUPPRESSION.get(why, EventKind.UNKNOWN), why, why
    if record == "Delivery":
        return EventKind.DELIVERED, text(payload.get("Details")), ""
    if record not in ("Bounce", "SpamComplaint"):
        return EventKind.UNKNOWN, f"postmark record {record!r}", ""
    kind_name = text(payload.get("Type")) or record
    reason = text(payload.get("Details")) or text(payload.get("Description"))
    if kind_name in _BOUNCE_TYPES:
        return _BOUNCE_TYPES[kind_name], reason, kind_name
    if kind_name in _BOUNCED or payload.get("Inactive") is True:
        return EventKind.BOUNCED, reason, kind_name
    if kind_name in _DEFERRED:
        return EventKind.DEFERRED, reason, kind_name
    return EventKind.UNKNOWN, reason or kind_name, kind_name


WEBHOOK = Webhook(
    max_body=MAX_BODY,
    precheck=lambda headers, s, now: precheck(headers, s.postmark_webhook_auth),
    verify=lambda body, headers, s, now, replay: verify(body, headers, s.postmark_webhook_auth),
    parse=lambda body, headers, now: parse(body, received_at=now),
    keep_unusable=True)
