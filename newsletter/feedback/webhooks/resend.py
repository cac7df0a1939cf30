"""Resend webhooks, signed by Svix (the Standard Webhooks scheme).

Spec: https://resend.com/docs/webhooks/verify-webhooks-requests and
https://docs.svix.com/receiving/verifying-payloads/how-manual : HMAC-SHA256 over
``{svix-id}.{svix-timestamp}.{raw body}``, keyed with the base64-decoded secret after its
``whsec_`` prefix, base64 output; ``svix-signature`` lists space-separated ``v1,<sig>``
entries (several during a key rotation), any one matching passes; a 5-minute tolerance either
way (Svix re-signs each retry, so the window costs nothing). White-labelled senders use
``webhook-id``/``-timestamp``/``-signature``. Payloads: ``webhooks`` in Resend's OpenAPI
(``shared/provider-specs/resend/resend.yaml``).

Kinds: ``email.bounced`` by ``bounce.type`` (``Permanent`` is ``bounced``, ``Transient`` and
``Undetermined`` are ``deferred``; older payloads reported a suppressed address as a bounce,
which is ``rejected``); ``email.suppressed`` is ``rejected``; ``email.complained``,
``email.delivery_delayed`` (``deferred``), ``email.delivered``; ``contact.updated`` with
``unsubscribed: true`` is ``unsubscribed``; the rest ``unknown``. The event id is ``svix-id``,
which stays the same when Resend resends an event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ...clock import utc_now
from ...errors import ConfigError
from .. import ids
from ..events import BadSignature, Event, EventKind, NotConfigured, UnusablePayload, digest_id
from ..times import from_iso, from_unix
from ._common import check_window, header, json_object, load_json, secrets_list, text
from .hook import Webhook

PROVIDER = "resend"
TOLERANCE = timedelta(minutes=5)
# One event per request, and only metadata: the ``webhooks`` schemas of Resend's OpenAPI
# (tests/provider-specs/resend/resend.json) carry ids, addresses, subject, tags, custom headers
# and attachment names, never a message body. 256 KiB is ample.
MAX_BODY = 256 * 1024
_SUPPRESSED = ("suppressed sending", "suppression list")
_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
_KINDS = {
    "email.complained": EventKind.COMPLAINED,
    "email.delivery_delayed": EventKind.DEFERRED,
    "email.delivered": EventKind.DELIVERED,
    "email.suppressed": EventKind.REJECTED,
}


def load_secret(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_...`` secret."""
    encoded = secret.strip().removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ConfigError("resend_webhook_secret: not a whsec_ signing secret")
    return key


def _svix(headers: Mapping[str, str], name: str) -> str:
    return header(headers, f"svix-{name}") or header(headers, f"webhook-{name}")


def verify(body: bytes, headers: Mapping[str, str], secret: str | Sequence[str],
           *, now: datetime, tolerance: timedelta = TOLERANCE) -> None:
    """Raise unless one of the signatures matches one of the secrets and the time is recent."""
    precheck(headers, secret, now=now, tolerance=tolerance)
    keys = [load_secret(s) for s in secrets_list(secret)]
    msg_id, timestamp, signatures = _svix(headers, "id"), _svix(headers, "timestamp"), \
        _svix(headers, "signature")
    content = f"{msg_id}.{timestamp}.".encode() + body
    expected = [base64.b64encode(hmac.digest(k, content, hashlib.sha256)) for k in keys]
    given = [entry[3:].encode() for entry in signatures.split() if entry.startswith("v1,")]
    # Compare every pair, so the time taken does not tell which secret or entry matched.
    matched = [hmac.compare_digest(e, g) for e in expected for g in given]
    if not any(matched):
        raise BadSignature("resend webhook: no signature matches")


def precheck(headers: Mapping[str, str], secret: str | Sequence[str], *,
             now: datetime, tolerance: timedelta = TOLERANCE) -> None:
    """What the headers alone can refuse, before the body is read: no secret configured, a
    svix header missing, a timestamp that is not Unix seconds or is outside ``tolerance``."""
    if not secrets_list(secret):
        raise NotConfigured("resend webhook: resend_webhook_secret is not set")
    msg_id, timestamp, signatures = (_svix(headers, n) for n in ("id", "timestamp", "signature"))
    if not (msg_id and timestamp and signatures):
        raise BadSignature("resend webhook: svix-id, svix-timestamp or svix-signature missing")
    signed_at = from_unix(timestamp) if timestamp.isascii() and timestamp.isdigit() else None
    if signed_at is None:
        raise BadSignature("resend webhook: svix-timestamp is not Unix seconds")
    check_window(signed_at, now, tolerance, PROVIDER)


def parse(body: bytes, headers: Mapping[str, str] | None = None, *,
          received_at: datetime | None = None) -> list[Event]:
    """One event per impacted recipient (one, since every message goes to one address)."""
    payload = load_json(body, PROVIDER)
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise UnusablePayload("resend webhook: not an event object with data")
    data = payload["data"]
    name = text(payload.get("type"))
    kind, reason, code = _classify(name, data)
    occurred = from_iso(payload.get("created_at")) or received_at or utc_now()
    base_id = _svix(headers or {}, "id") or digest_id(PROVIDER, payload)
    recipients = _recipients(name, data)
    return [Event(
        provider=PROVIDER,
        kind=kind,
        event_id=base_id if len(recipients) == 1 else f"{base_id}:{address}",
        recipient=address,
        occurred_at=occurred,
        reason=reason,
        code=code,
        provider_message_id=text(data.get("email_id")),
        message_id=_message_id(data.get("headers")),
        metadata=ids.metadata_from(data.get("tags")),
        raw=payload,
    ) for address in recipients]


def _classify(name: str, data: dict[str, Any]) -> tuple[EventKind, str, str]:
    if name == "email.bounced":
        bounce = json_object(data.get("bounce"))
        message, kind_text = text(bounce.get("message")), text(bounce.get("type"))
        codes = bounce.get("diagnosticCode")
        diagnostic = text(codes[0]) if isinstance(codes, list) and codes else ""
        status = _STATUS.search(diagnostic)
        reason = ": ".join(p for p in (text(bounce.get("subType")), diagnostic or message) if p)
        code = status[0] if status else ""
        if any(marker in message.lower() for marker in _SUPPRESSED):
            return EventKind.REJECTED, message, code
        if kind_text == "Permanent":
            return EventKind.BOUNCED, reason, code
        return EventKind.DEFERRED, f"{kind_text or 'Undetermined'} {reason}".strip(), code
    if name == "email.suppressed":
        info = json_object(data.get("suppressed"))
        return EventKind.REJECTED, text(info.get("reason")) or text(info.get("message")), ""
    if name == "contact.updated" and data.get("unsubscribed") is True:
        return EventKind.UNSUBSCRIBED, "unsubscribed in Resend", ""
    if name in _KINDS:
        return _KINDS[name], "", ""
    failed = json_object(data.get("failed"))
    return EventKind.UNKNOWN, text(failed.get("reason")) or f"resend event {name!r}", ""


def _recipients(name: str, data: dict[str, Any]) -> list[str]:
    if name.startswith("contact."):
        return [text(data.get("email"))]
    to = data.get("to")
    addresses = [text(a) for a in to if text(a)] if isinstance(to, list) else []
    return addresses or [""]


def _message_id(headers: object) -> str:
    if isinstance(headers, list):
        for item in headers:
            if isinstance(item, dict) and text(item.get("name")).lower() == "message-id":
                return ids.angle(item.get("value"))
    return ""


WEBHOOK = Webhook(
    max_body=MAX_BODY,
    precheck=lambda headers, s, now: precheck(headers, s.resend_webhook_secret, now=now),
    verify=lambda body, headers, s, now, replay: verify(
        body, headers, s.resend_webhook_secret, now=now),
    parse=lambda body, headers, now: parse(body, headers, received_at=now),
    keep_unusable=True)
