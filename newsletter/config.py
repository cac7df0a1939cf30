"""Configuration: ``newsletter.toml`` plus ``NEWSLETTER_<KEY>`` environment overrides.

The file is found at ``--config PATH``, else ``$NEWSLETTER_CONFIG``, else ``./newsletter.toml``.
Keys are flat. Relative paths (and a relative SQLite database path) resolve against the
config file's folder. Values are checked once, here; each error names the key at fault.
Secrets are never part of an error message or of ``Config.redacted()``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config_checks as checks
from .errors import ConfigError

SECRET_KEYS = frozenset(
    {"secret_key", "secret_key_previous", "provider_api_key", "smtp_password",
     "aws_secret_access_key"}
    # Hearing back from providers and the feedback mailbox:
    | {"mailgun_webhook_signing_key", "resend_webhook_secret", "postmark_webhook_auth",
       "imap_password"}
    | {"dkim_private_key"}
)
PROVIDERS = ("eml", "postmark", "sendgrid", "mailgun", "ses", "resend", "smtp")
SMTP_SECURITY = ("starttls", "tls", "none")
PATH_KEYS = ("items_dir", "templates_dir", "outbox_dir")
# Text keys that may hold line breaks (PEM armour); every other text value is one line.
MULTILINE_KEYS = ("sendgrid_webhook_public_key", "dkim_private_key")
# Not config keys: where the config came from, where each value came from, what to warn about.
_META = ("base_dir", "source", "origins", "warnings")
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
    secret_key: str = ""
    secret_key_previous: tuple[str, ...] = ()  # still verify links signed before a rotation
    # The web app (`newsletter web`)
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    trusted_proxies: tuple[str, ...] = ()  # whose X-Forwarded-* headers are believed
    subscribe_captcha: str = ""            # "" or "altcha" (self-hosted proof of work)
    confirm_max_age: int = 7 * 24 * 3600   # seconds a confirmation link stays valid
    archive: bool = True                   # the public archive of sent editions
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
        from .audience.addresses import ascii_domain

        domain = self.from_address.rpartition("@")[2]
        return ascii_domain(domain) if domain else "localhost"

    def redacted(self) -> dict[str, Any]:
        """Every key and value, fit for a log line: secrets show only whether they are set."""
        out: dict[str, Any] = {}
        for f in _fields():
            value = getattr(self, f.name)
            if f.name in SECRET_KEYS:
                value = "(set)" if value else "(unset)"
            elif f.name == "database_url":
                from .store.db import safe_url

                value = safe_url(value)
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


def _fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(Config) if f.name not in _META]


def find_config_path(explicit: str | os.PathLike | None = None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    env = os.environ.get("NEWSLETTER_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path} (from NEWSLETTER_CONFIG)")
        return path
    default = Path("newsletter.toml")
    return default if default.is_file() else None


def load_config(
    explicit: str | os.PathLike | None = None, environ: dict[str, str] | None = None
) -> Config:
    """Load, override from the environment, coerce and validate; raise ConfigError on any fault."""
    environ = os.environ if environ is None else environ
    path = find_config_path(explicit)
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_toml(path)
    known = {f.name: f for f in _fields()}
    source = str(path) if path else "defaults"
    for key in raw:
        if key not in known:
            raise ConfigError(f"unknown config key '{key}' in {source}")
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name, f in known.items():
        variable = f"NEWSLETTER_{name.upper()}"
        if variable in environ:
            values[name] = checks.coerce(name, f, environ[variable], variable, SECRET_KEYS)
            origins[name] = variable
        elif name in raw:
            values[name] = checks.coerce(name, f, raw[name], source, SECRET_KEYS)
            origins[name] = source
    base_dir = (path.parent if path else Path.cwd()).resolve()
    for key in PATH_KEYS:
        if key in values:
            values[key] = Path(values[key])
    values.setdefault("smtp_max_connections", values.get("concurrency", Config.concurrency))
    if "dkim_private_key" in values:  # a PEM pasted into a variable ends with a line break
        values["dkim_private_key"] = values["dkim_private_key"].strip()
    config = Config(base_dir=base_dir, source=source, origins=origins,
                    warnings=checks.env_warnings(environ, known), **values)
    config = _resolve_paths(config)
    _validate(config)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _resolve_paths(config: Config) -> Config:
    changes: dict[str, Any] = {}
    for key in PATH_KEYS:
        value: Path = getattr(config, key)
        if not value.is_absolute():
            changes[key] = config.base_dir / value
    prefix = "sqlite:///"
    url = config.database_url
    if (url.startswith(prefix) and not url.startswith((prefix + "/", prefix + "file:"))
            and ":memory:" not in url):
        changes["database_url"] = prefix + str(config.base_dir / url[len(prefix):])
    return dataclasses.replace(config, **changes)


def _validate(config: Config) -> None:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"config key '{key}' {why} ({config.origin(key)})")

    checks.check_text(config, SECRET_KEYS, bad, skip=MULTILINE_KEYS + _META)
    checks.check_secrets(config, SECRET_KEYS, bad)
    if config.provider not in PROVIDERS:
        raise bad("provider", f"must be one of {', '.join(PROVIDERS)}, got {config.provider!r}")
    if config.smtp_security not in SMTP_SECURITY:
        raise bad("smtp_security", f"must be one of {', '.join(SMTP_SECURITY)}")
    if not config.name.strip():
        raise bad("name", "must not be empty: it names the newsletter in every subject")
    checks.check_addresses(config, bad)
    checks.check_base_url(config.base_url, bad)
    if config.rate_limit < 0:
        raise bad("rate_limit", "must be 0 (unlimited) or more")
    if not 0 <= config.max_error_rate <= 1:
        raise bad("max_error_rate", "must be between 0 and 1")
    if config.retry_delay < 0:
        raise bad("retry_delay", "must be 0 or more seconds")
    for key in ("concurrency", "batch_size", "smtp_port", "max_attempts", "smtp_max_connections"):
        if getattr(config, key) < 1:
            raise bad(key, "must be 1 or more")
    if config.misfire_grace < 0:
        raise bad("misfire_grace", "must be 0 or more seconds")
    if len(config.schedule.split()) not in (5, 6):
        raise bad("schedule", f"must be a 5-field cron expression, got {config.schedule!r}")
    _check_timezone(config.timezone, bad)
    _check_issue(config, bad)
    _check_web(config, bad)
    _check_feedback(config, bad)
    _check_dkim(config, bad)
    _check_brake(config, bad)


def _check_timezone(name: str, bad) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad("timezone", f"is not a known IANA time zone: {name!r}") from None


def _check_issue(config: Config, bad) -> None:
    import re
    from datetime import date

    if config.issue_start < 0:
        raise bad("issue_start", "must be 0 or more (the first edition's issue number)")
    match = re.fullmatch(r"(\d{4})-W(\d{2})", config.first_week)
    if config.first_week and not match:
        raise bad("first_week", f"must be an ISO week like 2026-W47, got {config.first_week!r}")
    try:
        if match:
            date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise bad("first_week", f"{config.first_week!r} is not a week of that year") from None


CAPTCHAS = ("", "altcha")


def _check_web(config: Config, bad) -> None:
    import ipaddress

    if not 1 <= config.web_port <= 65535:
        raise bad("web_port", "must be a port number between 1 and 65535")
    if config.subscribe_captcha not in CAPTCHAS:
        raise bad("subscribe_captcha",
                  f'must be "" or "altcha", got {config.subscribe_captcha!r}')
    if config.confirm_max_age < 60:
        raise bad("confirm_max_age", "must be at least 60 seconds")
    for value in config.trusted_proxies:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise bad("trusted_proxies", f"{value!r} is not an IP address or network") from None


IMAP_SECURITY = ("tls", "starttls", "none")


def _check_feedback(config: Config, bad) -> None:
    if config.imap_security not in IMAP_SECURITY:
        raise bad("imap_security", f"must be one of {', '.join(IMAP_SECURITY)}")
    if not 0 <= config.imap_port <= 65535:
        raise bad("imap_port", "must be 0 (the default for imap_security) or a port number")
    if config.soft_bounce_limit < 1:
        raise bad("soft_bounce_limit", "must be 1 or more")
    if any(":" not in pair for pair in config.postmark_webhook_auth):
        raise bad("postmark_webhook_auth", "must be user:password (several: comma-separated)")
    if config.imap_host and not config.imap_username:
        raise bad("imap_username", "must be set when imap_host is")


# A DKIM selector (it names <selector>._domainkey.<domain>) and domain: DNS labels.
DNS_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                           r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")


def _check_dkim(config: Config, bad) -> None:
    """The key itself is read when the SMTP transport starts (providers/_dkim.py)."""
    if bool(config.dkim_selector) != bool(config.dkim_private_key):
        missing = "dkim_private_key" if config.dkim_selector else "dkim_selector"
        raise bad(missing, "must be set too: DKIM signing needs both dkim_selector and "
                           "dkim_private_key")
    if config.dkim_selector and not DNS_NAME.match(config.dkim_selector):
        raise bad("dkim_selector", "must be a DNS name: letters, digits and '-', dots between "
                                   f"labels, got {config.dkim_selector!r}")
    if config.dkim_domain:
        from .audience.addresses import ascii_domain
        from .errors import HeaderError

        try:
            domain = ascii_domain(config.dkim_domain)
        except HeaderError as exc:
            raise bad("dkim_domain", str(exc)) from None
        if "." not in domain or not DNS_NAME.match(domain):
            raise bad("dkim_domain", f"must be a domain name, got {config.dkim_domain!r}")


def _check_brake(config: Config, bad) -> None:
    from .delivery.canary import parse_canary

    try:
        parse_canary(config.canary)
    except ValueError as exc:
        raise bad("canary", f"must be {exc}") from None
    if config.canary_wait < 0:
        raise bad("canary_wait", "must be 0 or more seconds")
    for key in ("brake_bounce_rate", "brake_complaint_rate"):
        if not 0 <= getattr(config, key) <= 1:
            raise bad(key, "must be a share between 0 (never pause) and 1, e.g. 0.05 for 5%")
    for key in ("brake_min_sent", "brake_min_events"):
        if getattr(config, key) < 1:
            raise bad(key, "must be 1 or more")
