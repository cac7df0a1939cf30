"""One entry point for ``POST /webhooks/{provider}``: verify, then parse, per provider.

``Inbound.receive`` returns the events to store, or raises ``WebhookRejected`` (answer its
``status`` and ``headers``; nothing changes), ``WebhookUnavailable`` (answer 503, the provider
retries) or ``ConfigError`` (a configured secret is malformed: answer 500 and say so in the
log). The caller answers 2xx only once the events are stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from ..events import Event, NotConfigured, WebhookRejected
from ..replay import ReplayGuard
from . import mailgun, postmark, resend, sendgrid, ses, sns
from ._common import secrets_list

PROVIDERS = ("sendgrid", "mailgun", "resend", "ses", "postmark")


@dataclass(frozen=True)
class WebhookSettings:
    """The webhook secrets, named as the config keys are; empty means "refuse"."""

    sendgrid_webhook_public_key: str = ""
    mailgun_webhook_signing_key: str = ""
    resend_webhook_secret: str | Sequence[str] = ""
    postmark_webhook_auth: str | Sequence[str] = ""
    ses_sns_topic_arns: str | Sequence[str] = ""
    ses_sns_cert_base_url: str = ""


@dataclass(frozen=True)
class Received:
    events: list[Event]
    note: str = ""  # what happened besides events, for the log (a confirmed subscription)
    confirmed: list[str] = field(default_factory=list)


class Inbound:
    """Verifies and parses webhooks; ``transport`` stands in for the network in tests."""

    def __init__(self, settings: WebhookSettings, *, replay: ReplayGuard,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.settings = settings
        self.replay = replay
        self.clock = clock
        self.certificates = sns.Certificates(base_url=settings.ses_sns_cert_base_url,
                                             transport=transport)
        self._http = httpx.AsyncClient(transport=transport, timeout=5.0, follow_redirects=False)

    async def receive(self, provider: str, body: bytes, headers: Mapping[str, str], *,
                      replay: ReplayGuard | None = None) -> Received:
        """``replay`` stands in for the guard given at construction, for this request only
        (the web app's guard settles its claims in the transaction that stores the events)."""
        now, s = self.clock(), self.settings
        if provider == "sendgrid":
            sendgrid.verify(body, headers, s.sendgrid_webhook_public_key, now=now)
            return Received(sendgrid.parse(body, received_at=now))
        if provider == "mailgun":
            mailgun.verify(body, headers, s.mailgun_webhook_signing_key, now=now,
                           replay=replay or self.replay)
            return Received(mailgun.parse(body, received_at=now))
        if provider == "resend":
            resend.verify(body, headers, s.resend_webhook_secret, now=now)
            return Received(resend.parse(body, headers, received_at=now))
        if provider == "postmark":
            postmark.verify(body, headers, s.postmark_webhook_auth)
            return Received(postmark.parse(body, received_at=now))
        if provider == "ses":
            return await self._ses(body, headers, now)
        raise WebhookRejected(f"no webhook for provider {provider[:40]!r}", status=404)

    async def _ses(self, body: bytes, headers: Mapping[str, str], now: datetime) -> Received:
        if not secrets_list(self.settings.ses_sns_topic_arns):
            raise NotConfigured("ses webhook: ses_sns_topic_arns is not set")
        envelope = await sns.authenticate(
            body, headers, topic_arns=self.settings.ses_sns_topic_arns,
            certificates=self.certificates, now=now)
        topic = envelope["TopicArn"]
        if envelope["Type"] == "SubscriptionConfirmation":
            await sns.confirm_subscription(envelope, self._http)
            return Received([], f"confirmed the SNS subscription to {topic}", [topic])
        if envelope["Type"] == "UnsubscribeConfirmation":
            return Received([], f"SNS unsubscribed this endpoint from {topic}; not re-subscribing")
        return Received(ses.parse(body, received_at=now))

    async def aclose(self) -> None:
        await self.certificates.aclose()
        await self._http.aclose()
