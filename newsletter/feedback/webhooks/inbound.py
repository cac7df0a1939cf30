"""One entry point for ``POST /webhooks/{provider}``: verify, then parse, per provider.

``PROVIDERS`` holds, for each provider whose ``ProviderInfo`` names a webhook module, that
module's ``Webhook`` (``hook.py``): the largest body the provider sends (``max_body``, where the
figure's source is given), its header-only ``precheck``, its verifier and its parser.
``Inbound.precheck`` runs the precheck before a byte of the body is read, refusing what the headers
alone can (no secret configured, credentials or a signature header missing or wrong) with the
provider's usual status. ``Inbound.receive`` returns the events to store, or raises
``WebhookRejected`` (answer its ``status`` and ``headers``; nothing changes),
``WebhookUnavailable`` (answer 503, the provider retries) or ``ConfigError`` (a configured
secret is malformed: answer 500 and say so in the log). The caller answers 2xx only once the
events are stored.

A verified body of a shape its parser does not read (``UnusablePayload``: JSON, but say an
object where SendGrid sends an array, or a Mailgun event whose ``event`` is a list) is
refused or kept, by how the provider retries (each ``Webhook.keep_unusable``):

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import import_module

import httpx

from ...clock import utc_now
from ...providers import REGISTRY
from ..events import Event, NotConfigured, UnusablePayload, WebhookRejected
from ..replay import ReplayGuard
from . import sns
from ._common import secrets_list, unusable
from .hook import Webhook, WebhookSettings

__all__ = ["PROVIDERS", "Inbound", "Received", "Webhook", "WebhookSettings"]


def _webhooks() -> dict[str, Webhook]:
    """Each provider's ``Webhook``, from the module its ``ProviderInfo`` names."""
    return {info.name: import_module(f"{__package__}.{info.webhook}").WEBHOOK
            for info in REGISTRY.values() if info.webhook is not None}


PROVIDERS: Mapping[str, Webhook] = _webhooks()


@dataclass(frozen=True)
class Received:
    events: list[Event]
    note: str = ""  # what happened besides events, for the log (a confirmed subscription)
    confirmed: list[str] = field(default_factory=list)


class Inbound:
    """Verifies and parses webhooks; ``transport`` stands in for the network in tests."""

    def __init__(self, settings: WebhookSettings, *, replay: ReplayGuard,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], datetime] = utc_now):
        self.settings = settings
        self.replay = replay
        self.clock = clock
        self.certificates = sns.Certificates(base_url=settings.ses_sns_cert_base_url,
                                             transport=transport)
        self._http = httpx.AsyncClient(transport=transport, timeout=5.0, follow_redirects=False)

    def precheck(self, provider: str, headers: Mapping[str, str]) -> None:
        """Raise ``WebhookRejected`` for what the headers alone refuse. ``receive`` does not
        rely on it having run: it verifies everything again, over the body."""
        _webhook(provider).precheck(headers, self.settings, self.clock())

    async def receive(self, provider: str, body: bytes, headers: Mapping[str, str], *,
                      replay: ReplayGuard | None = None) -> Received:
        """``replay`` stands in for the guard given at construction, for this request only
        (the web app's guard settles its claims in the transaction that stores the events)."""
        webhook, now = _webhook(provider), self.clock()
        if webhook.verify is None:
            return await self._enveloped(provider, webhook, body, headers, now)
        webhook.verify(body, headers, self.settings, now, replay or self.replay)
        return _parsed(provider, webhook, body, lambda: webhook.parse(body, headers, now), now)

    async def _enveloped(self, provider: str, webhook: Webhook, body: bytes,
                         headers: Mapping[str, str], now: datetime) -> Received:
        """An SNS delivery (SES): the envelope authenticated, a subscription confirmed."""
        if not secrets_list(self.settings.ses_sns_topic_arns):
            raise NotConfigured(f"{provider} webhook: ses_sns_topic_arns is not set")
        envelope = await sns.authenticate(
            body, headers, topic_arns=self.settings.ses_sns_topic_arns,
            certificates=self.certificates, now=now)
        topic = envelope["TopicArn"]
        if envelope["Type"] == "SubscriptionConfirmation":
            await sns.confirm_subscription(envelope, self._http)
            return Received([], f"confirmed the SNS subscription to {topic}", [topic])
        if envelope["Type"] == "UnsubscribeConfirmation":
            return Received([], f"SNS unsubscribed this endpoint from {topic}; not re-subscribing")
        return _parsed(provider, webhook, body, lambda: webhook.parse(body, headers, now), now)

    async def aclose(self) -> None:
        await self.certificates.aclose()
        await self._http.aclose()


def _webhook(provider: str) -> Webhook:
    webhook = PROVIDERS.get(provider)
    if webhook is None:
        raise WebhookRejected(f"no webhook for provider {provider[:40]!r}", status=404)
    return webhook


def _parsed(provider: str, webhook: Webhook, body: bytes, parse: Callable[[], list[Event]],
            now: datetime) -> Received:
    """The events of a verified body; an unusable one is kept where the provider's webhook
    says so (``keep_unusable``), and refused (the parser's UnusablePayload) elsewhere."""
    try:
        return Received(parse())
    except UnusablePayload as exc:
        if not webhook.keep_unusable:
            raise
        return Received([unusable(provider, body, exc, now)],
                        f"kept a body it cannot read as one unknown event: {exc.reason}")
