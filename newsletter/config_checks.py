"""Configuration values: coercing what TOML or an environment variable gives to each key's
type, and the checks every key of a kind shares: one-line text, secrets, addresses, numbers,
and the environment variables that look like a mistyped key.

Each check takes the loaded ``Config`` and ``bad(key, why)``, which makes the ConfigError that
names the key and where its value came from (the file, or the ``NEWSLETTER_<KEY>`` variable).
No message ever shows a secret's value.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import ConfigError
from .text import has_control

Bad = Callable[[str, str], ConfigError]

# Secrets sent as one token (an HTTP header, a signature's key): a space anywhere is a paste
# accident, never part of the key.
TOKEN_SECRETS = ("provider_api_key", "aws_access_key_id", "aws_secret_access_key")
ADDRESS_KEYS = ("from_address", "reply_to", "unsubscribe_mailto")
# NEWSLETTER_* variables the project and its tooling read that are not config keys.
NOT_KEYS = ("NEWSLETTER_CONFIG", "NEWSLETTER_ENV_FILE", "NEWSLETTER_PROVIDER_SPECS")
NOT_KEY_PREFIXES = ("NEWSLETTER_TEST", "NEWSLETTER_REQUIRE_", "NEWSLETTER_DOCKER_")


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
                shown = "" if f.name in secrets else f": {item!r}"
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
    from .audience.addresses import parse_address
    from .errors import SubscriberError

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


def finite(name: str, value: float, shown: str, where: str) -> float:
    if not math.isfinite(value):
        raise ConfigError(f"config key '{name}' must be a finite number, got {shown} ({where})")
    return value


def env_warnings(environ: Mapping[str, str], keys: Iterable[str]) -> tuple[str, ...]:
    """A line for each ``NEWSLETTER_*`` variable that is no key, naming the closest key."""
    names = {f"NEWSLETTER_{key.upper()}": key for key in keys}
    out = []
    for var in sorted(environ):
        if (not var.startswith("NEWSLETTER_") or var in names or var in NOT_KEYS
                or var.startswith(NOT_KEY_PREFIXES)):
            continue
        close = difflib.get_close_matches(var, names, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]} (config key '{names[close[0]]}')?" if close else ""
        out.append(f"environment variable {var} is not a config key, ignored{hint}")
    return tuple(out)


def coerce(name: str, f: dataclasses.Field, value: Any, where: str,
           secrets: frozenset[str]) -> Any:
    """A TOML or environment value as the field's type; ConfigError naming the key and
    ``where`` (a secret's value is never shown)."""
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    shown = "(hidden)" if name in secrets else repr(value)
    if kind == "bool":
        return _boolean(name, value, shown, where)
    if kind.startswith("tuple"):
        return _string_list(name, value, shown, where)
    try:
        if kind == "int":
            # Whole numbers only: int(2.5) would quietly make 2 of it, int(inf) overflows.
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return finite(name, float(value), shown, where)
    except (TypeError, ValueError):
        whole = "a whole number" if kind == "int" else "a number"
        raise ConfigError(f"config key '{name}' must be {whole}, got {shown} ({where})") from None
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
