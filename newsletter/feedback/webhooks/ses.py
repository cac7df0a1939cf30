"""Amazon SES events delivered through SNS: the notification content, as Events.

Spec: https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html (identity
notifications, ``notificationType``) and
https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html
(configuration-set event publishing, ``eventType``): both are read. Verification of the SNS
envelope is in ``sns``; this module parses a verified body.

One notification can name several recipients (``bouncedRecipients``, ``complainedRecipients``,
``delivery.recipients``, ``deliveryDelay.delayedRecipients``): one Event each, with the SNS
MessageId (kept by SNS retries) and the address as the event id. Kinds: a ``Permanent``
bounce is ``bounced``, except the subtypes ``Suppressed`` and ``OnAccountSuppressionList``
(SES did not try: ``rejected``); ``Transient`` and ``Undetermined`` are ``deferred``;
complaints are ``complained`` (``not-spam`` feedback is ``unknown``); ``Delivery``,
``DeliveryDelay`` (``deferred``), a ``Subscription`` event that unsubscribes from all topics
(``unsubscribed``); the rest ``unknown``. The Message-ID in ``commonHeaders`` is ours (SES
sends our raw message); ``mail.messageId`` is the id SES returned; ``mail.tags`` carries the
``EmailTags`` (edition with ``_`` for ``.``, subscriber_id).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from ... import json_input
from .. import ids
from ..events import Event, EventKind, UnusablePayload
from ..times import from_iso
from ._common import load_json, text

PROVIDER = "ses"
VALIDATION_MESSAGE = "Successfully validated SNS topic for Amazon SES event publishing."
_SUPPRESSED = {"Suppressed", "OnAccountSuppressionList"}


def parse(body: bytes, *, received_at: datetime | None = None) -> list[Event]:
    """Events of a verified SNS Notification; none for subscription messages and SES's test."""
    envelope = load_json(body, PROVIDER)
    if not isinstance(envelope, dict) or envelope.get("Type") != "Notification":
        return []
    message = envelope.get("Message")
    if not isinstance(message, str) or message.strip() == VALIDATION_MESSAGE:
        return []
    try:
        content = json_input.loads(message)
    except json_input.UnreadableJSON as exc:
        raise UnusablePayload(f"ses webhook: the SNS Message is {exc}") from None
    if not isinstance(content, dict):
        raise UnusablePayload("ses webhook: the SNS Message is not an SES event")
    received = received_at or datetime.now(UTC)
    fallback = from_iso(envelope.get("Timestamp")) or received
    return list(_events(content, text(envelope.get("MessageId")), fallback))


def _events(content: dict, sns_id: str, fallback: datetime) -> Iterator[Event]:
    mail = _dict(content.get("mail"))
    name = text(content.get("eventType")) or text(content.get("notificationType"))
    common = {
        "provider_message_id": text(mail.get("messageId")),
        "message_id": _our_message_id(mail),
        "metadata": ids.metadata_from(mail.get("tags")),
        "raw": content,
    }
    for address, kind, reason, code, when in _outcomes(name, content, mail):
        yield Event(provider=PROVIDER, kind=kind, event_id=f"{sns_id}:{address}",
                    recipient=address, occurred_at=from_iso(when) or fallback,
                    reason=reason, code=code, **common)


def _outcomes(name: str, content: dict, mail: dict) -> Iterator[tuple]:
    """(address, kind, reason, code, time) for each recipient the event is about."""
    if name == "Bounce":
        bounce = _dict(content.get("bounce"))
        kind_text, sub = text(bounce.get("bounceType")), text(bounce.get("bounceSubType"))
        kind = EventKind.DEFERRED
        if kind_text == "Permanent":
            kind = EventKind.REJECTED if sub in _SUPPRESSED else EventKind.BOUNCED
        for r in _list(bounce.get("bouncedRecipients")):
            reason = text(r.get("diagnosticCode")) or f"{kind_text} {sub}".strip()
            yield (text(r.get("emailAddress")), kind, reason, text(r.get("status")),
                   bounce.get("timestamp"))
    elif name == "Complaint":
        complaint = _dict(content.get("complaint"))
        feedback = text(complaint.get("complaintFeedbackType"))
        kind = EventKind.COMPLAINED
        if text(complaint.get("complaintSubType")) == "OnAccountSuppressionList":
            kind = EventKind.REJECTED
        elif feedback == "not-spam":
            kind = EventKind.UNKNOWN
        for r in _list(complaint.get("complainedRecipients")):
            yield (text(r.get("emailAddress")), kind, feedback, "", complaint.get("timestamp"))
    elif name == "Delivery":
        delivery = _dict(content.get("delivery"))
        for address in _strings(delivery.get("recipients")):
            yield (address, EventKind.DELIVERED, text(delivery.get("smtpResponse")), "",
                   delivery.get("timestamp"))
    elif name == "DeliveryDelay":
        delay = _dict(content.get("deliveryDelay"))
        for r in _list(delay.get("delayedRecipients")):
            yield (text(r.get("emailAddress")), EventKind.DEFERRED,
                   text(r.get("diagnosticCode")) or text(delay.get("delayType")),
                   text(r.get("status")), delay.get("timestamp"))
    elif name == "Subscription" and _dict(
            _dict(content.get("subscription")).get("newTopicPreferences")).get("unsubscribeAll"):
        sub = _dict(content.get("subscription"))
        for address in _strings(mail.get("destination")):
            yield (address, EventKind.UNSUBSCRIBED, "unsubscribed from all topics", "",
                   sub.get("timestamp"))
    else:
        for address in _strings(mail.get("destination")) or [""]:
            yield (address, EventKind.UNKNOWN, f"ses event {name!r}", "", mail.get("timestamp"))


def _our_message_id(mail: dict) -> str:
    common = _dict(mail.get("commonHeaders"))
    if common.get("messageId"):
        return ids.angle(common["messageId"])
    for item in _list(mail.get("headers")):
        if text(item.get("name")).lower() == "message-id":
            return ids.angle(item.get("value"))
    return ""


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Mapping]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [text(v) for v in value if text(v)] if isinstance(value, list) else []
