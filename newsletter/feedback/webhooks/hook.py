"""What a webhook module tells the inbound dispatcher: ``WEBHOOK = Webhook(...)``.

The provider's ``ProviderInfo`` (``providers/``) names its webhook module; that module declares
its cap, its header-only precheck, its verifier and its parser in one ``Webhook``, each taking
the secrets from ``WebhookSettings``, so ``inbound.Inbound`` calls every provider alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..events import Event
from ..replay import ReplayGuard


@dataclass(frozen=True)
class WebhookSettings:
    """The webhook secrets, named as the config keys are; empty means "refuse"."""

    sendgrid_webhook_public_key: str = ""
    mailgun_webhook_signing_key: str = ""
    resend_webhook_secret: str | Sequence[str] = ""
    postmark_webhook_auth: str | Sequence[str] = ""
    ses_sns_topic_arns: str | Sequence[str] = ""
    ses_sns_cert_base_url: str = ""


Headers = Mapping[str, str]


@dataclass(frozen=True)
class Webhook:
    """What is known of a provider's requests, and how each one is judged and read."""

    max_body: int  # bytes
    # Before the body is read: raise WebhookRejected for what the headers alone refuse.
    precheck: Callable[[Headers, WebhookSettings, datetime], None]
    # Over the raw body: raise WebhookRejected unless it is provably the provider's. None: the
    # body is an SNS envelope, which the dispatcher authenticates with the certificates it
    # fetches and keeps (``sns.Certificates``), answering subscription messages itself.
    verify: Callable[[bytes, Headers, WebhookSettings, datetime, ReplayGuard], None] | None
    parse: Callable[[bytes, Headers, datetime], list[Event]]  # a verified body's events
    # A verified body its parser cannot read: kept as one unknown event (True) or refused;
    # by how the provider retries (the table in ``inbound``).
    keep_unusable: bool
