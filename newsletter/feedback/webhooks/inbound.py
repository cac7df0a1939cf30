"""One entry point for ``POST /webhooks/{provider}``: verify, then parse, per provider.

``PROVIDERS`` names, for each provider, the largest body it sends (``max_body``, from its
module, where the figure's source is given) and its header-only ``precheck``.
``Inbound.precheck`` runs that before a byte of the body is read, refusing what the headers
alone can (no secret configured, credentials or a signature header missing or wrong) with the
provider's usual status. ``Inbound.receive`` returns the events to store, or raises
``WebhookRejected`` (answer its ``status`` and ``headers``; nothing changes),
``WebhookUnavailable`` (answer 503, the provider retries) or ``ConfigError`` (a configured
secret is malformed: answer 500 and say so in the log). The caller answers 2xx only once the
events are stored.

A verified body of a shape its parser does not read (``UnusablePayload``: JSON, but say an
object where SendGrid sends an array, or a Mailgun event whose ``event`` is a list) is
refused or kept, by how the provider retries (``KEEP_UNUSABLE``):

    provider  retries a delivery answered with                       an unusable body gets
    mailgun   anything but 200 or 406, for 8 hours [1]               406: refused, never retried
    ses       5xx or no answer; SNS takes a 4xx as final [2]         400: refused, never retried
    sendgrid  anything but 2xx, for up to 24 hours [3]               200, kept
    resend    anything but 2xx, 8 tries over 28 hours; an endpoint   200, kept
              failing for 5 days is disabled [4]
    postmark  anything but 200, for about 10 hours (that a 403      200, kept
              ends it is documented for inbound-mail hooks only) [5]

Kept is one ``unknown`` event that names nobody and holds the body whole
(``_common.unusable``), logged as the answer's note: refusing would only have the provider
send it again for a day, and a later release may read it from the event log. A body that is
not JSON at all (not UTF-8, not JSON, nested deeper than ``json_input.MAX_DEPTH``) is refused
by every provider (400; Mailgun 406): no provider sends one, so there is nothing to keep.

[1] https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-retries
[2] https://docs.aws.amazon.com/sns/latest/dg/sns-message-delivery-retries.html (the policy is
    for server-side errors) and .../SendMessageToHttp.prepare.html (a status outside 200-4xx,
    or no answer in 15 s, is a failed delivery)
[3] https://docs.sendgrid.com/for-developers/tracking-events/troubleshooting
[4] https://resend.com/docs/webhooks/retries-and-replays, https://docs.svix.com/retries
[5] https://postmarkapp.com/support/article/understanding-inbound-webhook-retries-in-postmark
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from ..events import Event, NotConfigured, UnusablePayload, WebhookRejected
from ..replay import ReplayGuard
from . import mailgun, postmark, resend, sendgrid, ses, sns
from ._common import secrets_list, unusable

# Who gets a 200 for a verified body its parser cannot read, and has it kept (the table above).
KEEP_UNUSABLE = frozenset({"sendgrid", "resend", "postmark"})


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
class Webhook:
    """What is known of a provider's requests before their bodies are read."""

    max_body: int  # bytes
    precheck: Callable[[Mapping[str, str], WebhookSettings, datetime], None]


PROVIDERS: Mapping[str, Webhook] = {
    "sendgrid": Webhook(sendgrid.MAX_BODY, lambda headers, s, now: sendgrid.precheck(
        headers, s.sendgrid_webhook_public_key, now=now)),
    "mailgun": Webhook(mailgun.MAX_BODY, lambda headers, s, now: mailgun.precheck(
        headers, s.mailgun_webhook_signing_key)),
    "resend": Webhook(resend.MAX_BODY, lambda headers, s, now: resend.precheck(
        headers, s.resend_webhook_secret, now=now)),
    "ses": Webhook(sns.MAX_BODY, lambda headers, s, now: sns.precheck(
        headers, s.ses_sns_topic_arns)),
    "postmark": Webhook(postmark.MAX_BODY, lambda headers, s, now: postmark.precheck(
        headers, s.postmark_webhook_auth)),
}


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

    def precheck(self, provider: str, headers: Mapping[str, str]) -> None:
        """Raise ``WebhookRejected`` for what the headers alone refuse. ``receive`` does not
        rely on it having run: it verifies everything again, over the body."""
        webhook = PROVIDERS.get(provider)
        if webhook is None:
            raise WebhookRejected(f"no webhook for provider {provider[:40]!r}", status=404)
        webhook.precheck(headers, self.settings, self.clock())

    async def receive(self, provider: str, body: bytes, headers: Mapping[str, str], *,
                      replay: ReplayGuard | None = None) -> Received:
        """``replay`` stands in for the guard given at construction, for this request only
        (the web app's guard settles its claims in the transaction that stores the events)."""
        now, s = self.clock(), self.settings
        if provider == "sendgrid":
            sendgrid.verify(body, headers, s.sendgrid_webhook_public_key, now=now)
            return _parsed(provider, body, now, lambda: sendgrid.parse(body, received_at=now))
        if provider == "mailgun":
            mailgun.verify(body, headers, s.mailgun_webhook_signing_key, now=now,
                           replay=replay or self.replay)
            return _parsed(provider, body, now, lambda: mailgun.parse(body, received_at=now))
        if provider == "resend":
            resend.verify(body, headers, s.resend_webhook_secret, now=now)
            return _parsed(provider, body, now,
                           lambda: resend.parse(body, headers, received_at=now))
        if provider == "postmark":
            postmark.verify(body, headers, s.postmark_webhook_auth)
            return _parsed(provider, body, now, lambda: postmark.parse(body, received_at=now))
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
        return _parsed("ses", body, now, lambda: ses.parse(body, received_at=now))

    async def aclose(self) -> None:
        await self.certificates.aclose()
        await self._http.aclose()


def _parsed(provider: str, body: bytes, now: datetime,
            parse: Callable[[], list[Event]]) -> Received:
    """The events of a verified body; an unusable one is kept, for the providers in
    ``KEEP_UNUSABLE``, and refused (the parser's UnusablePayload) for the rest."""
    try:
        return Received(parse())
    except UnusablePayload as exc:
        if provider not in KEEP_UNUSABLE:
            raise
        return Received([unusable(provider, body, exc, now)],
                        f"kept a body it cannot read as one unknown event: {exc.reason}")
