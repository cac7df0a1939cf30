"""Coercing what TOML or an environment variable gives to each key's type (text, numbers,
true/false, lists), and the environment variables that look like a mistyped key. No message
ever shows a secret's value."""


from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigError
from .model import shown_value

# NEWSLETTER_* variables the project and its tooling read that are not config keys.
NOT_KEYS = ("NEWSLETTER_CONFIG", "NEWSLETTER_ENV_FILE", "NEWSLETTER_PROVIDER_SPECS")
NOT_KEY_PREFIXES = ("NEWSLETTER_TEST", "NEWSLETTER_REQUIRE_", "NEWSLETTER_DOCKER_")


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
    if isinstance(value, str):
        value = utf8_text(name, value, where, secrets)
    shown = shown_value(name, value, secrets)
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


def utf8_text(name: str, value: str, where: str, secrets: frozenset[str]) -> str:
    """``value``, refused unless it is UTF-8 text. An environment variable holding other bytes
    reaches Python as surrogate escapes (b"\\xff" as "\\udcff"), which would fail far from
    here, with a traceback, the first time the value is encoded (a signature, a file name)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        at = "the value is not shown" if name in secrets else f"at character {exc.start + 1}"
        raise ConfigError(f"config key '{name}' is not UTF-8 text ({at}); set it in UTF-8 "
                          f"({where})") from None
    return value


def file_secret_warnings(raw: Mapping[str, Any], source: str,
                         secrets: frozenset[str]) -> tuple[str, ...]:
    """A line for each secret written into the config file, which is shared and committed
    far more easily than the environment is."""
    out = []
    for key in sorted(secrets & raw.keys()):
        value = raw[key]
        if not value:
            continue
        if key == "dkim_private_key" and not str(value).lstrip().startswith("-----BEGIN"):
            continue  # the path of the PEM file, not the key itself
        out.append(f"config key '{key}' is a secret but is set in {source}: move it to the "
                   f"environment variable NEWSLETTER_{key.upper()}")
    return tuple(out)


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
