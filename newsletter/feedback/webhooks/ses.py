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
(``unsubscribed``); ``Send`` (SES took the message for sending; configuration-set event
publishing only, an identity's notifications have none) is ``accepted``, one per
``mail.destination``, which resolves a send's ``unknown`` rows (``delivery.reconcile_events``);
the rest ``unknown``. The Message-ID in ``commonHeaders`` is ours (SES
sends our raw message); ``mail.messageId`` is the id SES returned; ``mail.tags`` carries the
``EmailTags`` (edition with ``_`` for ``.``, subscriber_id).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ... import json_input
from ...clock import utc_now
from .. import ids
from ..events import Event, EventKind, UnusablePayload
from ..times import from_iso
from . import sns
from ._common import json_object, load_json, text
from .hook import Webhook

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
    received = received_at or utc_now()
    fallback = from_iso(envelope.get("Timestamp")) or received
    return list(_events(content, text(envelope.get("MessageId")), fallback))


def _events(content: dict[str, Any], sns_id: str, fallback: datetime) -> Iterator[Event]:
    mail = json_object(content.get("mail"))
    name = text(content.get("eventType")) or text(content.get("notificationType"))
    # The same in every recipient's event.
    provider_message_id = text(mail.get("messageId"))
    message_id = _our_message_id(mail)
    metadata = ids.metadata_from(mail.get("tags"))
    for address, kind, reason, code, when in _outcomes(name, content, mail):
        yield Event(provider=PROVIDER, kind=kind, event_id=f"{sns_id}:{address}",
                    recipient=address, occurred_at=from_iso(when) or fallback,
                    reason=reason, code=code, provider_message_id=provider_message_id,
                    message_id=message_id, metadata=metadata, raw=content)


# (address, kind, reason, code, time as the event gives it)
_Outcome = tuple[str, EventKind, str, str, object]


def _outcomes(name: str, content: dict[str, Any], mail: dict[str, Any]) -> Iterator[_Outcome]:
    """(address, kind, reason, code, time) for each recipient the event is about."""
    if name == "Bounce":
        bounce = json_object(content.get("bounce"))
        kind_text, sub = text(bounce.get("bounceType")), text(bounce.get("bounceSubType"))
        kind = EventKind.DEFERRED
        if kind_text == "Permanent":
            kind = EventKind.REJECTED if sub in _SUPPRESSED else EventKind.BOUNCED
        for r in _list(bounce.get("bouncedRecipients")):
            reason = text(r.get("diagnosticCode")) or f"{kind_text} {sub}".strip()
            yield (text(r.get("emailAddress")), kind, reason, text(r.get("status")),
                   bounce.get("timestamp"))
    elif name == "Complaint":
        complaint = json_object(content.get("complaint"))
        feedback = text(complaint.get("complaintFeedbackType"))
        kind = EventKind.COMPLAINED
        if text(complaint.get("complaintSubType")) == "OnAccountSuppressionList":
            kind = EventKind.REJECTED
        elif feedback == "not-spam":
            kind = EventKind.UNKNOWN
        for r in _list(complaint.get("complainedRecipients")):
            yield (text(r.get("emailAddress")), kind, feedback, "", complaint.get("timestamp"))
    elif name == "Delivery":
        delivery = json_object(content.get("delivery"))
        for address in _strings(delivery.get("recipients")):
            yield (address, EventKind.DELIVERED, text(delivery.get("smtpResponse")), "",
                   delivery.get("timestamp"))
    elif name == "Send":
        # The ``send`` object is empty: who and when are in ``mail``.
        for address in _strings(mail.get("destination")):
            yield (address, EventKind.ACCEPTED, "", "", mail.get("timestamp"))
    elif name == "DeliveryDelay":
        delay = json_object(content.get("deliveryDelay"))
        for r in _list(delay.get("delayedRecipients")):
            yield (text(r.get("emailAddress")), EventKind.DEFERRED,
                   text(r.get("diagnosticCode")) or text(delay.get("delayType")),
                   text(r.get("status")), delay.get("timestamp"))
    elif name == "Subscription" and json_object(
            json_object(content.get("subscription")).get("newTopicPreferences")).get("unsubscribeAll"):
        subscription = json_object(content.get("subscription"))
        for address in _strings(mail.get("destination")):
            yield (address, EventKind.UNSUBSCRIBED, "unsubscribed from all topics", "",
                   subscription.get("timestamp"))
    else:
        for address in _strings(mail.get("destination")) or [""]:
            yield (address, EventKind.UNKNOWN, f"ses event {name!r}", "", mail.get("timestamp"))


def _our_message_id(mail: dict[str, Any]) -> str:
    common = json_object(mail.get("commonHeaders"))
    if common.get("messageId"):
        return ids.angle(common["messageId"])
    for item in _list(mail.get("headers")):
        if text(item.get("name")).lower() == "message-id":
            return ids.angle(item.get("value"))
    return ""


def _list(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _strings(value: object) -> list[str]:
    return [text(v) for v in value if text(v)] if isinstance(value, list) else []


# The body is the SNS envelope (``sns``) around the notification this module parses.
WEBHOOK = Webhook(
    max_body=sns.MAX_BODY,
    precheck=lambda headers, s, now: sns.precheck(headers, s.ses_sns_topic_arns),
    verify=None,
    parse=lambda body, headers, now: parse(body, received_at=now),
    keep_unusable=False)
