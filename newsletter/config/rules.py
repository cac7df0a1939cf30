"""Validating a loaded ``Config``: what each key may hold, and what keys require of each other.

Each check takes the ``Config`` and ``bad(key, why)``, which makes the ConfigError that names
the key and where its value came from (the file, or the ``NEWSLETTER_<KEY>`` variable). No
message ever shows a secret's value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigError
from ..text import has_control
from .model import (
    LOG_FORMATS,
    META,
    MULTILINE_KEYS,
    SECRET_KEYS,
    SMTP_SECURITY,
    Config,
    shown_value,
)

Bad = Callable[[str, str], ConfigError]

# Secrets sent as one token (an HTTP header, a signature's key): a space anywhere is a paste
# accident, never part of the key.
TOKEN_SECRETS = ("provider_api_key", "aws_access_key_id", "aws_secret_access_key",
                 "metrics_token")
ADDRESS_KEYS = ("from_address", "reply_to", "unsubscribe_mailto")


def check_text(config: Any, secrets: frozenset[str], bad: Bad,
               skip: Iterable[str] = ()) -> None:
    """Every text value is one line: no control character (CR, LF, tab, NUL, U+2028...)."""
    skip = frozenset(skip)
    for f in dataclasses.fields(config):
        if f.name in skip:
            continue
        value = getattr(config, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, str) and has_control(item):
                shown = "" if f.name in secrets else f": {shown_value(f.name, item, secrets)}"
                raise bad(f.name, f"must be one line without control characters{shown}")


def check_secrets(config: Any, secrets: frozenset[str], bad: Bad) -> None:
    for key in sorted(secrets):
        value = getattr(config, key, "")
        for item in value if isinstance(value, tuple) else (value,):
            if item != item.strip():
                raise bad(key, "starts or ends with white space; remove it "
                               "(the value is not shown)")
    for key in TOKEN_SECRETS:
        if any(c.isspace() for c in getattr(config, key)):
            raise bad(key, "contains white space; a key is one word (the value is not shown)")


def check_addresses(config: Any, bad: Bad) -> None:
    """The sender's addresses pass the same rules as a subscriber's (``audience.addresses``)."""
    from ..audience.addresses import parse_address
    from ..errors import SubscriberError

    for key in ADDRESS_KEYS:
        value = getattr(config, key)
        if not value:
            continue
        try:
            address = parse_address(value)
        except SubscriberError as exc:
            raise bad(key, f"is not an email address: {value!r}: {exc}") from None
        if address.name is not None or address.email != value.strip():
            raise bad(key, f"must be a bare address (the name goes in from_name), got {value!r}")


def check_base_url(url: str, bad: Bad) -> None:
    if not url:
        return
    if not url.startswith(("http://", "https://")):
        raise bad("base_url", "must start with http:// or https://")
    if not url.isascii() or any(c.isspace() for c in url):
        raise bad("base_url", "must be an ASCII URL without spaces (write an internationalized "
                              f"domain in its xn-- form), got {url!r}")


def validate(config: Config) -> None:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"config key '{key}' {why} ({config.origin(key)})")

    check_text(config, SECRET_KEYS, bad, skip=MULTILINE_KEYS + META)
    check_secrets(config, SECRET_KEYS, bad)
    _check_provider(config.provider, bad)
    if config.smtp_security not in SMTP_SECURITY:
        raise bad("smtp_security", f"must be one of {', '.join(SMTP_SECURITY)}")
    if config.log_format not in LOG_FORMATS:
        raise bad("log_format", f"must be text or json, got {config.log_format!r}")
    if not config.name.strip():
        raise bad("name", "must not be empty: it names the newsletter in every subject")
    check_addresses(config, bad)
    check_base_url(config.base_url, bad)
    if config.rate_limit < 0:
        raise bad("rate_limit", "must be 0 (unlimited) or more")
    if not 0 <= config.max_error_rate <= 1:
        raise bad("max_error_rate", "must be between 0 and 1")
    if config.retry_delay < 0:
        raise bad("retry_delay", "must be 0 or more seconds")
    if config.reconcile_settle < 0:
        raise bad("reconcile_settle", "must be 0 or more seconds")
    if not config.stall_after > 0:
        raise bad("stall_after", "must be more than 0 seconds")
    _check_alert_webhook(config.alert_webhook_url, bad)
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


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _check_alert_webhook(url: str, bad: Bad) -> None:
    """https only: the URL is the webhook's credential. Plain http only to this machine
    (a test's or a local relay's). The value is a secret: never shown."""
    if not url:
        return
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise bad("alert_webhook_url", "is not a URL (the value is not shown)") from None
    if not host or not url.isascii() or any(c.isspace() for c in url):
        raise bad("alert_webhook_url", "must be an https:// URL of a webhook (the value is "
                                       "not shown)")
    loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise bad("alert_webhook_url", "must start with https:// (http:// only to localhost); "
                                       "the value is not shown")


def _check_provider(name: str, bad: Bad) -> None:
    from ..providers import REGISTRY  # the providers' own list; loads none of their modules

    if name not in REGISTRY:
        raise bad("provider", f"must be one of {', '.join(REGISTRY)}, got {name!r}")


def _check_timezone(name: str, bad) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a name too long for a file name, looked for on disk as one.
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
    if not 0 <= config.worker_health_port <= 65535:
        raise bad("worker_health_port", "must be 0 (none) or a port number up to 65535")
    if config.worker_health_port and not config.worker_health_host.strip():
        raise bad("worker_health_host", "must be an address to listen on, e.g. 127.0.0.1")
    if config.subscribe_captcha not in CAPTCHAS:
        raise bad("subscribe_captcha",
                  f'must be "" or "altcha", got {config.subscribe_captcha!r}')
    if config.confirm_max_age < 60:
        raise bad("confirm_max_age", "must be at least 60 seconds")
    if config.click_counts and not config.base_url:
        raise bad("click_counts", "needs base_url: the counted links go through "
                                  "<base_url>/r/...")
    if config.admin_auth and ":" not in config.admin_auth:
        raise bad("admin_auth", "must be user:password")
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
        from ..audience.addresses import ascii_domain
        from ..errors import HeaderError

        try:
            domain = ascii_domain(config.dkim_domain)
        except HeaderError as exc:
            raise bad("dkim_domain", str(exc)) from None
        if "." not in domain or not DNS_NAME.match(domain):
            raise bad("dkim_domain", f"must be a domain name, got {config.dkim_domain!r}")


def _check_brake(config: Config, bad) -> None:
    from ..delivery.canary import parse_canary

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
