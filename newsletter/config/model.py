"""The ``Config`` value: one field per config key, with its default, and the keys' kinds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

SECRET_KEYS = frozenset(
    {"secret_key", "secret_key_previous", "provider_api_key", "smtp_password",
     "aws_secret_access_key"}
    # Hearing back from providers and the feedback mailbox:
    | {"mailgun_webhook_signing_key", "resend_webhook_secret", "postmark_webhook_auth",
       "imap_password"}
    | {"dkim_private_key"}
    # What a Prometheus scrape of the web app's /metrics must send; the admin pages' login.
    | {"metrics_token", "admin_auth"}
    # A Slack-style incoming webhook carries its token in the URL's path.
    | {"alert_webhook_url"}
)
SMTP_SECURITY = ("starttls", "tls", "none")
LOG_FORMATS = ("text", "json")  # newsletter.logs formats "json"
PATH_KEYS = ("items_dir", "templates_dir", "outbox_dir")
# Text keys that may hold line breaks (PEM armour); every other text value is one line.
MULTILINE_KEYS = ("sendgrid_webhook_public_key", "dkim_private_key")
# Not config keys: where the config came from, where each value came from, what to warn about.
META = ("base_dir", "source", "origins", "warnings")
# Signs dry-run tokens when no secret_key is configured; real providers refuse to start with it.
DEMO_SECRET = "newsletter-demo-key-not-secret"


@dataclass(frozen=True)
class Config:
    base_dir: Path = field(default_factory=Path.cwd)
    source: str = "defaults"
    # key -> the file or the NEWSLETTER_<KEY> variable its value came from (absent: default)
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)
    name: str = "Newsletter"
    from_address: str = ""
    from_name: str = ""
    reply_to: str = ""
    postal_address: str = ""
    base_url: str = ""
    unsubscribe_mailto: str = ""
    items_dir: Path = Path("items")
    # The masthead's issue number: first_week ("": the earliest week folder) is issue_start.
    issue_start: int = 1
    first_week: str = ""
    templates_dir: Path = Path("templates")
    database_url: str = "sqlite:///subscribers/newsletter.db"
    provider: str = "eml"
    provider_base_url: str = ""
    provider_api_key: str = ""
    provider_stream: str = ""
    mailgun_domain: str = ""
    aws_region: str = "us-east-1"
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_security: str = "starttls"
    smtp_max_connections: int = 0  # at most this many; load_config defaults it to concurrency
    # DKIM on the SMTP path: the selector, the key (a PEM file's path, or the PEM itself from
    # the environment) and the signing domain (default: the From domain)
    dkim_selector: str = ""
    dkim_private_key: str = ""
    dkim_domain: str = ""
    outbox_dir: Path = Path("outbox")
    rate_limit: float = 0.0
    concurrency: int = 4
    batch_size: int = 500
    max_attempts: int = 5        # sends of one message before a transient error is final
    retry_delay: float = 30.0    # seconds before the first retry of a transient error, doubling
    max_error_rate: float = 0.2  # abort when more than this share of recipients fail (0: never)
    # Seconds after a batch was sent before "not found" at the provider means "not accepted"
    # (delivery/reconcile.py); 0: the provider's own settle time
    reconcile_settle: float = 0.0
    # A send `sending` with no progress for this many seconds is stalled (delivery/stalls.py)
    stall_after: float = 600.0
    # Where a send's start, end, abort, pause and stalls are posted (Slack-compatible
    # incoming webhook JSON; delivery/alerts.py); "": no alerts
    alert_webhook_url: str = ""
    # The canary (a count, a share or "10%" of the list, sent first; "0": none) and its wait
    # in seconds; the brake: hard-bounce and complaint rates that pause a send (0: never),
    # once this many messages and events are in (delivery/canary.py, delivery/brake.py)
    canary: str = "0"
    canary_wait: float = 1800.0
    brake_bounce_rate: float = 0.05
    brake_complaint_rate: float = 0.003
    brake_min_sent: int = 1000
    brake_min_events: int = 10
    schedule: str = "0 8 * * mon"
    timezone: str = "UTC"
    misfire_grace: int = 6 * 3600
    # The worker's GET /healthz (worker/health.py): its port (0: none, the default; the
    # Docker image sets 8001) and where it listens (loopback: the image's health check is
    # inside the container)
    worker_health_port: int = 0
    worker_health_host: str = "127.0.0.1"
    secret_key: str = ""
    secret_key_previous: tuple[str, ...] = ()  # still verify links signed before a rotation
    # The web app (`newsletter web`)
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    trusted_proxies: tuple[str, ...] = ()  # whose X-Forwarded-For/-Proto are believed
    subscribe_captcha: str = ""            # "" or "altcha" (self-hosted proof of work)
    confirm_max_age: int = 7 * 24 * 3600   # seconds a confirmation link stays valid
    archive: bool = True                   # the public archive of sent editions
    # Count clicks per item link: the items' links go through {base_url}/r/<token>, a signed
    # token naming the week, item and link and no reader (edition/click_links.py, clicks/)
    click_counts: bool = False
    welcome: bool = True                   # a welcome mail after a confirmation (web)
    description: str = ""                  # what the newsletter is, for the welcome mail
    metrics_token: str = ""                # the bearer token of GET /metrics ("": no route)
    admin_auth: str = ""                   # user:password of /admin/... ("": no such routes)
    # Hearing back: webhook secrets (empty refuses that provider's webhook), the mailbox
    sendgrid_webhook_public_key: str = ""
    mailgun_webhook_signing_key: str = ""
    resend_webhook_secret: tuple[str, ...] = ()  # several during a key rotation
    postmark_webhook_auth: tuple[str, ...] = ()  # user:password pairs
    ses_sns_topic_arns: tuple[str, ...] = ()
    ses_sns_cert_base_url: str = ""
    imap_host: str = ""
    imap_port: int = 0                           # 0: 993 for tls, 143 otherwise
    imap_username: str = ""
    imap_password: str = ""
    imap_folder: str = "INBOX"
    imap_security: str = "tls"
    soft_bounce_limit: int = 3                   # transient bounces in a row that suppress
    # How the worker, the web app and a send log: "text" lines, or "json" for a log shipper
    log_format: str = "text"

    def require(self, *keys: str) -> None:
        """Raise ConfigError naming the first of ``keys`` that is empty."""
        for key in keys:
            if getattr(self, key) in ("", None):
                raise ConfigError(
                    f"missing config key '{key}' in {self.source} "
                    f"(or set NEWSLETTER_{key.upper()})"
                )

    def origin(self, key: str) -> str:
        """Where ``key``'s value came from: the config file or its environment variable."""
        return self.origins.get(key, self.source)

    @property
    def signing_key(self) -> str:
        """The key that signs links; the demo key only while nothing can be really sent."""
        if self.secret_key:
            return self.secret_key
        if self.provider != "eml":
            raise ConfigError(
                f"config key 'secret_key' must be set (NEWSLETTER_SECRET_KEY) to send through "
                f"provider {self.provider!r}: it signs the unsubscribe links"
            )
        return DEMO_SECRET

    @property
    def verification_keys(self) -> tuple[str, ...]:
        """The keys a link may be signed with: the current one, then ``secret_key_previous``."""
        return (self.signing_key, *self.secret_key_previous)

    @property
    def sender_domain(self) -> str:
        """The From domain in its ASCII (IDNA 2008) form, for Message-ID and List-Id."""
        from ..audience.addresses import ascii_domain

        domain = self.from_address.rpartition("@")[2]
        return ascii_domain(domain) if domain else "localhost"

    def redacted(self) -> dict[str, Any]:
        """Every key and value, fit for a log line: secrets show only whether they are set."""
        out: dict[str, Any] = {}
        for f in key_fields():
            value = getattr(self, f.name)
            if f.name in SECRET_KEYS:
                value = "(set)" if value else "(unset)"
            elif f.name == "database_url":
                from ..store.db import safe_url

                value = safe_url(value)
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


def shown_value(key: str, value: Any, secrets: frozenset[str] = SECRET_KEYS) -> str:
    """``value`` as an error message may show it: a secret never, the database URL without
    its passwords."""
    if key in secrets:
        return "(hidden)"
    if key == "database_url":
        from ..store.db import safe_url

        return repr(safe_url(value)) if isinstance(value, str) else "(hidden)"
    return repr(value)


def key_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(Config) if f.name not in META]


