"""Configuration: ``newsletter.toml`` plus ``NEWSLETTER_<KEY>`` environment overrides.

The file is found at ``--config PATH``, else ``$NEWSLETTER_CONFIG``, else ``./newsletter.toml``.
Keys are flat. Relative paths (and a relative SQLite database path) resolve against the
config file's folder. Values are checked once, here; each error names the key at fault.
Secrets are never part of an error message or of ``Config.redacted()``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

SECRET_KEYS = frozenset(
    {"secret_key", "provider_api_key", "smtp_password", "aws_secret_access_key"}
)
PROVIDERS = ("eml", "postmark", "sendgrid", "mailgun", "ses", "resend", "smtp")
SMTP_SECURITY = ("starttls", "tls", "none")
PATH_KEYS = ("items_dir", "templates_dir", "outbox_dir")
# Signs dry-run tokens when no secret_key is configured; real providers refuse to start with it.
DEMO_SECRET = "newsletter-demo-key-not-secret"


@dataclass(frozen=True)
class Config:
    base_dir: Path = field(default_factory=Path.cwd)
    source: str = "defaults"
    name: str = "Newsletter"
    from_address: str = ""
    from_name: str = ""
    reply_to: str = ""
    postal_address: str = ""
    base_url: str = ""
    unsubscribe_mailto: str = ""
    items_dir: Path = Path("items")
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
    outbox_dir: Path = Path("outbox")
    rate_limit: float = 0.0
    concurrency: int = 4
    batch_size: int = 500
    max_attempts: int = 5        # sends of one message before a transient error is final
    retry_delay: float = 30.0    # seconds before the first retry of a transient error, doubling
    max_error_rate: float = 0.2  # abort when more than this share of recipients fail (0: never)
    schedule: str = "0 8 * * mon"
    timezone: str = "UTC"
    misfire_grace: int = 6 * 3600
    secret_key: str = ""

    def require(self, *keys: str) -> None:
        """Raise ConfigError naming the first of ``keys`` that is empty."""
        for key in keys:
            if getattr(self, key) in ("", None):
                raise ConfigError(
                    f"missing config key '{key}' in {self.source} "
                    f"(or set NEWSLETTER_{key.upper()})"
                )

    @property
    def signing_key(self) -> str:
        return self.secret_key or DEMO_SECRET

    @property
    def sender_domain(self) -> str:
        return self.from_address.rpartition("@")[2] or "localhost"

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
    return [f for f in dataclasses.fields(Config) if f.name not in ("base_dir", "source")]


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
    for name, f in known.items():
        env_value = environ.get(f"NEWSLETTER_{name.upper()}")
        if env_value is not None:
            values[name] = _coerce(name, f, env_value, f"NEWSLETTER_{name.upper()}")
        elif name in raw:
            values[name] = _coerce(name, f, raw[name], source)
    base_dir = (path.parent if path else Path.cwd()).resolve()
    for key in PATH_KEYS:
        if key in values:
            values[key] = Path(values[key])
    values.setdefault("smtp_max_connections", values.get("concurrency", Config.concurrency))
    config = Config(base_dir=base_dir, source=source, **values)
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


def _coerce(name: str, f: dataclasses.Field, value: Any, where: str) -> Any:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    shown = "(hidden)" if name in SECRET_KEYS else repr(value)
    if kind == "bool":
        return _boolean(name, value, shown, where)
    if kind.startswith("tuple"):
        return _string_list(name, value, shown, where)
    try:
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key '{name}' must be a number, got {shown} ({where})") from None
    if isinstance(value, (dict, list, bool)):
        raise ConfigError(f"config key '{name}' must be a string, got {shown} ({where})")
    return str(value)


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _boolean(name: str, value: Any, shown: str, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"config key '{name}' must be true or false, got {shown} ({where})")


def _string_list(name: str, value: Any, shown: str, where: str) -> tuple[str, ...]:
    """A TOML array of strings, or one string of comma-separated items (what an environment
    variable can hold)."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = value
    else:
        raise ConfigError(f"config key '{name}' must be a list of strings or a comma-separated "
                          f"string, got {shown} ({where})")
    return tuple(item.strip() for item in items if item.strip())


def _resolve_paths(config: Config) -> Config:
    changes: dict[str, Any] = {}
    for key in PATH_KEYS:
        value: Path = getattr(config, key)
        if not value.is_absolute():
            changes[key] = config.base_dir / value
    prefix = "sqlite:///"
    url = config.database_url
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        changes["database_url"] = prefix + str(config.base_dir / url[len(prefix):])
    return dataclasses.replace(config, **changes)


def _validate(config: Config) -> None:
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"config key '{key}' {why} ({config.source})")

    if config.provider not in PROVIDERS:
        raise bad("provider", f"must be one of {', '.join(PROVIDERS)}, got {config.provider!r}")
    if config.smtp_security not in SMTP_SECURITY:
        raise bad("smtp_security", f"must be one of {', '.join(SMTP_SECURITY)}")
    for key in ("name", "from_name", "from_address", "reply_to", "postal_address", "base_url"):
        value = getattr(config, key)
        if "\r" in value or "\n" in value:
            raise bad(key, "must be a single line")
    for key in ("from_address", "reply_to"):
        value = getattr(config, key)
        if value and ("@" not in value or " " in value.strip()):
            raise bad(key, f"is not an email address: {value!r}")
    if config.base_url and not config.base_url.startswith(("http://", "https://")):
        raise bad("base_url", "must start with http:// or https://")
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
    if config.provider != "eml" and not config.secret_key:
        raise bad("secret_key", "must be set (NEWSLETTER_SECRET_KEY) to send through a provider")


def _check_timezone(name: str, bad) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad("timezone", f"is not a known IANA time zone: {name!r}") from None
