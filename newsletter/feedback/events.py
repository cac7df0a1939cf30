"""The normalized feedback vocabulary: every webhook and mail report becomes ``Event`` values.

Kinds (django-anymail's vocabulary, narrowed to what changes a list or settles the ledger):

    bounced       permanent: the address does not work
    deferred      transient: try again; several in a row count as a bounce
    complained    the recipient reported the message as spam
    unsubscribed  the recipient asked to stop, through the provider or by mail
    rejected      the provider did not try: it already suppresses the address
    delivered     the receiving server accepted the message
    accepted      the provider took the message for sending (SendGrid ``processed``, SES
                  ``Send``): changes no subscriber; what resolves an ``unknown`` ledger row
                  of a provider that cannot be searched (delivery.reconcile_events)
    unknown       anything else the provider reports (opens, clicks, failures of ours)

Errors a webhook or a mailbox can raise, each with one line a person can act on:

    NewsletterError                       (newsletter.errors)
    └── FeedbackError
        ├── WebhookRejected(reason, status)   answer 4xx; nothing was read or changed
        │   ├── NotConfigured         no secret is configured for the provider (403)
        │   ├── BadSignature          signature or credentials missing or wrong (403; 401 with a
        │   │                         challenge for Basic auth)
        │   ├── StaleRequest          the signed timestamp is outside the tolerance (403)
        │   ├── ReplayedRequest       a Mailgun token came back with a different event (403)
        │   ├── UnknownTopic          an SNS topic not in ``ses_sns_topic_arns`` (403)
        │   └── MalformedPayload      not what the provider sends (400)
        │       └── UnusablePayload   verified JSON of a shape the parser does not read
        ├── WebhookUnavailable(reason)     answer 503 so the provider retries (certificate or
        │                                  confirmation URL could not be fetched)
        ├── ReportError               a mail looked like a DSN or ARF report but is not readable
        └── MailboxError              the IMAP server could not be reached, refused the login,
                                      or a folder could not be selected or created

Mailgun stops retrying only on 406, so its module raises every rejection with ``status=406``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..errors import NewsletterError


class EventKind(StrEnum):
    BOUNCED = "bounced"
    DEFERRED = "deferred"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    REJECTED = "rejected"
    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Event:
    """One thing a provider or a mail report says happened to one recipient.

    ``event_id`` is unique per provider and the same when the provider repeats the event, so
    a store keyed on (provider, event_id) keeps a replayed event once. ``metadata`` holds the
    values we put into the message (``edition``, ``subscriber_id``, ``unsubscribe_token``) as
    far as the event carries them; ``raw`` is the provider's payload for this event, whole (a
    JSON object, or the text of a mail report).
    """

    provider: str
    kind: EventKind
    event_id: str
    recipient: str
    occurred_at: datetime
    reason: str = ""
    code: str = ""
    provider_message_id: str = ""
    message_id: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    raw: Mapping[str, Any] | str = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError("Event.occurred_at must be an aware datetime")


def digest_id(*parts: Any) -> str:
    """A stable id for an event whose provider gives none: a digest of what identifies it."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


class FeedbackError(NewsletterError):
    """Something this package refused or could not read."""


class WebhookRejected(FeedbackError):
    """Refuse the request with a 4xx status; ``headers`` go into the answer (a challenge)."""

    default_status = 403

    def __init__(self, reason: str, *, status: int | None = None,
                 headers: Mapping[str, str] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status or self.default_status
        self.headers = dict(headers or {})


class NotConfigured(WebhookRejected):
    pass


class BadSignature(WebhookRejected):
    pass


class StaleRequest(WebhookRejected):
    pass


class ReplayedRequest(WebhookRejected):
    pass


class UnknownTopic(WebhookRejected):
    pass


class MalformedPayload(WebhookRejected):
    default_status = 400


class UnusablePayload(MalformedPayload):
    """Verified, and JSON, but not of a shape the parser reads (``inbound`` decides, per
    provider, whether that is refused or kept as one ``unknown`` event)."""


class WebhookUnavailable(FeedbackError):
    """Answer 503: the request may be fine, but something it needs could not be fetched."""

    status = 503

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ReportError(FeedbackError):
    """A mail report (DSN, ARF) that cannot be read as one."""


class MailboxError(FeedbackError):
    """The IMAP mailbox could not be used; names the server and folder."""
