"""The ``newsletter.toml`` that ``newsletter init`` writes: every key, its default, one line on it.

The keys and defaults come from ``Config`` itself, so the file cannot fall behind the code; the
one-line notes are here, grouped as the README's table is. A key added to ``Config`` without a
note still appears (under "Other"), and a test fails until it gets one.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..config import SECRET_KEYS, Config, key_fields
from ..providers import REGISTRY

# (section title, [(key, note), ...]) in the order the file shows them.
SECTIONS: list[tuple[str, list[tuple[str, str]]]] = [
    ("The newsletter", [
        ("name", "the newsletter's name: subject prefix, masthead, List-Id"),
        ("description", "what the newsletter is, a sentence or two, for the welcome mail"),
        ("issue_start", "the issue number of first_week's edition"),
        ("first_week", 'the week of issue issue_start ("": the earliest week folder)'),
        ("from_address", "the sender's address (required to send)"),
        ("from_name", "the sender's name (default: name)"),
        ("reply_to", "where replies go"),
        ("postal_address", "printed in every footer (required to send: CAN-SPAM)"),
        ("base_url", "where `newsletter web` is reached: unsubscribe links, the archive"),
        ("unsubscribe_mailto", "adds a mailto: target to List-Unsubscribe"),
        ("archive", 'the public archive and the "View in your browser" link'),
        ("click_counts", "count clicks per item link through <base_url>/r/ (no reader kept)"),
        ("welcome", "a welcome mail after a confirmation on the web"),
    ]),
    ("Files", [
        ("items_dir", "one folder per ISO week of Markdown items"),
        ("templates_dir", "your templates; a file missing there is the package's default"),
        ("outbox_dir", "previews and dry runs"),
        ("database_url", "SQLite, or postgresql://user@host/db"),
    ]),
    ("Sending", [
        ("provider", " or ".join(", ".join(REGISTRY).rsplit(", ", 1))),
        ("provider_base_url", "another endpoint (EU region, proxy)"),
        ("provider_api_key", "secret: set NEWSLETTER_PROVIDER_API_KEY instead"),
        ("provider_stream", "the Postmark message stream, or the SES configuration set"),
        ("mailgun_domain", "Mailgun's sending domain"),
        ("aws_region", "SES region"),
        ("aws_access_key_id", "SES access key id"),
        ("aws_secret_access_key", "secret: set NEWSLETTER_AWS_SECRET_ACCESS_KEY instead"),
        ("smtp_host", "SMTP relay"),
        ("smtp_port", "SMTP port"),
        ("smtp_username", "SMTP login"),
        ("smtp_password", "secret: set NEWSLETTER_SMTP_PASSWORD instead"),
        ("smtp_security", "starttls, tls or none"),
        ("smtp_max_connections", "SMTP connections open at once (default: concurrency)"),
        ("dkim_selector", "DKIM-sign SMTP mail: <selector>._domainkey.<domain>"),
        ("dkim_private_key", "secret: the DKIM key (a PEM file's path, or the PEM itself)"),
        ("dkim_domain", "the signing domain (default: from_address's)"),
        ("rate_limit", "messages a second (0: unlimited)"),
        ("concurrency", "batches in flight"),
        ("batch_size", "recipients a batch (capped at the provider's maximum)"),
        ("max_attempts", "tries of a message with transient errors"),
        ("retry_delay", "seconds before the first retry (doubling)"),
        ("stall_after", "seconds without progress before a send counts as stalled"),
        ("alert_webhook_url", "secret: Slack-style webhook for send alerts (set it in the env)"),
        ("reconcile_settle", "seconds before \"not found\" means not accepted (0: the provider's)"),
        ("max_error_rate", "the failed share that stops a send (0: never)"),
        ("canary", 'sent first, then a wait: a count, a share or "10%" of the list ("0": none)'),
        ("canary_wait", "seconds to wait after the canary before the rest"),
        ("brake_bounce_rate", "the hard-bounce rate that pauses a send (0: never)"),
        ("brake_complaint_rate", "the complaint rate that pauses a send (0: never)"),
        ("brake_min_sent", "messages sent before the brake judges the rates"),
        ("brake_min_events", "events in before the brake judges the rates"),
    ]),
    ("Schedule (`newsletter worker`)", [
        ("schedule", "cron: minute hour day-of-month month day-of-week"),
        ("timezone", "an IANA time zone, e.g. Europe/Berlin"),
        ("misfire_grace", "seconds late a missed send may still go (0: no limit)"),
        ("worker_health_port", "the worker's GET /healthz port (0: none)"),
        ("worker_health_host", "where it listens"),
    ]),
    ("Links and the web app (`newsletter web`)", [
        ("secret_key", "secret: signs links; set NEWSLETTER_SECRET_KEY (required to send)"),
        ("secret_key_previous", "secret: earlier keys, still accepted for links"),
        ("web_host", "where `newsletter web` listens"),
        ("web_port", "its port"),
        ("trusted_proxies", "proxies whose X-Forwarded-For/-Proto are believed"),
        ("subscribe_captcha", '"" or "altcha" (a proof of work on the sign-up form)'),
        ("confirm_max_age", "seconds a confirmation link works"),
        ("metrics_token", "secret: turns on GET /metrics for this bearer token"),
        ("admin_auth", "secret: user:password; turns on GET /admin/report/{week}"),
    ]),
    ("Hearing back (webhooks, the feedback mailbox)", [
        ("sendgrid_webhook_public_key", "SendGrid's Event Webhook verification key"),
        ("mailgun_webhook_signing_key", "secret: Mailgun's webhook signing key"),
        ("resend_webhook_secret", "secret: Resend's whsec_... signing secrets"),
        ("postmark_webhook_auth", "secret: user:password pairs in Postmark's webhook URL"),
        ("ses_sns_topic_arns", "the SNS topics whose SES events are taken"),
        ("ses_sns_cert_base_url", "a mirror for SNS signing certificates"),
        ("imap_host", "the feedback mailbox's server"),
        ("imap_port", "0: 993 for tls, else 143"),
        ("imap_username", "its login"),
        ("imap_password", "secret: set NEWSLETTER_IMAP_PASSWORD instead"),
        ("imap_folder", "the folder read"),
        ("imap_security", "tls, starttls or none"),
        ("soft_bounce_limit", "deferred messages in a row that suppress an address"),
    ]),
    ("Logging", [
        ("log_format", 'text, or json: one JSON object a line (worker, web, send)'),
    ]),
]
# Shown instead of the stored default where that is a stand-in.
_SHOWN_DEFAULTS: dict[str, Any] = {"smtp_max_connections": Config.concurrency}

HEADER = """\
# {name}: the configuration `newsletter` reads in this folder (see the README).
# Every key is listed with its default; uncomment a line to change it. Any key can also be
# set by the environment variable NEWSLETTER_<KEY> (upper case), which wins over this file.
# Keep secrets out of this file: put them in the environment (or .env, which git ignores).
"""


def notes() -> dict[str, str]:
    return {key: note for _, keys in SECTIONS for key, note in keys}


def render_config(values: dict[str, Any]) -> str:
    """The file's text: ``values`` set, every other key commented out at its default."""
    fields = {f.name: f for f in key_fields()}
    known = notes()
    sections = [(title, [k for k, _ in keys if k in fields]) for title, keys in SECTIONS]
    other = [name for name in fields if name not in known]
    if other:
        sections.append(("Other (see the README)", other))
    name = values.get("name", Config.name)
    out = [HEADER.format(name=name.replace("\n", " "))]
    for title, keys in sections:
        out.append(f"\n# -- {title}\n")
        for key in keys:
            out.append(_line(key, fields[key], values, known.get(key, "see the README")))
    return "".join(out)


def _line(key: str, field: dataclasses.Field, values: dict[str, Any], note: str) -> str:
    if key in values:
        return f"{key} = {toml_value(values[key])}  # {note}\n"
    default = _SHOWN_DEFAULTS.get(key, _default(field))
    secret = " (secret)" if key in SECRET_KEYS and "secret" not in note else ""
    return f"# {key} = {toml_value(default)}  # {note}{secret}\n"


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory()  # type: ignore[misc]


def toml_value(value: Any) -> str:
    """A TOML literal for a config value (strings as basic strings, JSON's escapes agree)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
