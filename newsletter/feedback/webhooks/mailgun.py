"""Mailgun webhooks: HMAC-SHA256 of timestamp + token with the webhook signing key.

Spec: https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks
(concatenate ``timestamp`` and ``token``, HMAC-SHA256 with the webhook signing key, which is not
the API key, compare the hex digest with ``signature``); payloads:
https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads ; retries:
https://help.mailgun.com/hc/en-us/articles/202236504-Webhooks (200 done, 406 refused and never
retried, anything else retried for about 8 hours).

The body itself is not signed, so the token is single-use: ``ReplayGuard.claim`` refuses a
token that comes back with a different event. Retries carry the original signature block, so
the window must outlast Mailgun's retry schedule (10 min ... 4 h, about 8 hours in all): 12
hours. Only the JSON webhooks are understood (not the pre-2018 form-encoded ones). Every
refusal is a 406, the only status that stops Mailgun retrying.

Kinds: ``failed`` with ``severity: permanent`` is ``bounced``, ``temporary`` is ``deferred``;
a failure because Mailgun suppresses the address (reason ``suppress-*``, or codes 605 and 607)
is ``rejected``; ``complained``, ``unsubscribed``, ``rejected`` and ``delivered`` as named;
the rest ``unknown``. Our ``v:edition`` and ``v:subscriber_id`` are in ``user-variables``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ...clock import utc_now
from .. import ids
from ..events import (
    BadSignature,
    Event,
    EventKind,
    NotConfigured,
    ReplayedRequest,
    UnusablePayload,
    digest_id,
)
from ..replay import ReplayGuard
from ..times import from_unix
from ._common import check_window, json_object, load_json, text
from .hook import Webhook

PROVIDER = "mailgun"
REFUSED = 406
# One event per request (the payloads page above): the event's metadata, the message's headers
# (never its body) and the receiving server's answer, a few KB. 256 KiB leaves room for long
# answers and user variables.
MAX_BODY = 256 * 1024
TOLERANCE = timedelta(hours=12)
_SUPPRESSED_CODES = {"605", "607"}  # previously bounced, previously complained
_KINDS = {
    "complained": EventKind.COMPLAINED,
    "unsubscribed": EventKind.UNSUBSCRIBED,
    "rejected": EventKind.REJECTED,
    "delivered": EventKind.DELIVERED,
}


def verify(body: bytes, headers: Mapping[str, str], signing_key: str, *, now: datetime,
           replay: ReplayGuard, tolerance: timedelta = TOLERANCE) -> None:
    """Raise (406) unless signed, recent, and the token not used before for another event."""
    precheck(headers, signing_key)
    payload = load_json(body, PROVIDER, status=REFUSED)
    block = payload.get("signature") if isinstance(payload, dict) else None
    fields = [block.get(k) if isinstance(block, dict) else None
              for k in ("timestamp", "token", "signature")]
    present = [f for f in fields if isinstance(f, str) and f]
    if len(present) < len(fields):
        raise BadSignature("mailgun webhook: signature block missing (only JSON webhooks are "
                           "supported)", status=REFUSED)
    timestamp, token, signature = present
    # Mailgun's token is 50 random characters; a control character (a NUL, which PostgreSQL
    # cannot store) or anything beyond ASCII is not one, signed or not.
    if not (token.isascii() and token.isprintable()):
        raise BadSignature("mailgun webhook: the token is not Mailgun's", status=REFUSED)
    expected = hmac.new(signing_key.strip().encode(), f"{timestamp}{token}".encode(),
                        hashlib.sha256).hexdigest()
    # As bytes: compare_digest refuses (TypeError) a str with anything beyond ASCII.
    if not hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8")):
        raise BadSignature("mailgun webhook: signature does not match", status=REFUSED)
    signed_at = from_unix(timestamp)
    if signed_at is None:
        raise BadSignature("mailgun webhook: timestamp is not Unix seconds", status=REFUSED)
    check_window(signed_at, now, tolerance, PROVIDER, status=REFUSED)
    if not replay.claim(PROVIDER, token, _fingerprint(payload.get("event-data")),
                        signed_at + tolerance):
        raise ReplayedRequest("mailgun webhook: token already used for another event",
                              status=REFUSED)


def precheck(headers: Mapping[str, str], signing_key: str) -> None:
    """Before the body is read: refuse (406) when no signing key is configured. The signature
    is inside the body, so there is no header to check."""
    del headers
    if not signing_key.strip():
        raise NotConfigured("mailgun webhook: mailgun_webhook_signing_key is not set",
                            status=REFUSED)


def parse(body: bytes, *, received_at: datetime | None = None) -> list[Event]:
    """The one event of a verified request."""
    payload = load_json(body, PROVIDER, status=REFUSED)
    data = payload.get("event-data") if isinstance(payload, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise UnusablePayload("mailgun webhook: no event-data object naming its event",
                              status=REFUSED)
    received = received_at or utc_now()
    message = json_object(data.get("message"))
    headers = json_object(message.get("headers"))
    status = json_object(data.get("delivery-status"))
    kind = _kind(data, status)
    mailgun_id = headers.get("message-id")
    return [Event(
        provider=PROVIDER,
        kind=kind,
        event_id=_event_id(data),
        recipient=text(data.get("recipient")),
        occurred_at=from_unix(data.get("timestamp")) or received,
        reason=_reason(data, status, kind),
        code=text(status.get("code")),
        provider_message_id=ids.bare(mailgun_id),
        message_id=ids.angle(mailgun_id),
        metadata=ids.metadata_from(data.get("user-variables")),
        raw=data,
    )]


def _kind(data: dict[str, Any], status: dict[str, Any]) -> EventKind:
    name = data["event"]  # text: parse has checked
    if name != "failed":
        return _KINDS.get(name, EventKind.UNKNOWN)
    if text(data.get("reason")).startswith("suppress-") or text(status.get("code")) in \
            _SUPPRESSED_CODES:
        return EventKind.REJECTED
    return EventKind.BOUNCED if data.get("severity") == "permanent" else EventKind.DEFERRED


def _reason(data: dict[str, Any], status: dict[str, Any], kind: EventKind) -> str:
    words = text(status.get("message")) or text(status.get("description"))
    reason = text(data.get("reason"))
    if kind == EventKind.UNKNOWN:
        return f"mailgun event {text(data.get('event'))!r}"
    return f"{reason}: {words}" if reason and words else reason or words


def _event_id(data: dict[str, Any]) -> str:
    # Mailgun's event id is unique only within a day; with the event's own timestamp it is
    # unique, and both survive Mailgun's retries of the delivery.
    event_id, stamp = text(data.get("id")), text(data.get("timestamp"))
    return f"{event_id}@{stamp}" if event_id else digest_id(PROVIDER, data)


def _fingerprint(event_data: object) -> str:
    canonical = json.dumps(event_data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


WEBHOOK = Webhook(
    max_body=MAX_BODY,
    precheck=lambda headers, s, now: precheck(headers, s.mailgun_webhook_signing_key),
    verify=lambda body, headers, s, now, replay: verify(
        body, headers, s.mailgun_webhook_signing_key, now=now, replay=replay),
    parse=lambda body, headers, now: parse(body, received_at=now),
    keep_unusable=False)
