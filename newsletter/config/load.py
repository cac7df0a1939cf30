"""Finding and loading the configuration: the file, then ``NEWSLETTER_<KEY>`` overrides,
each value coerced to its key's type, relative paths resolved, everything validated."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import values
from .model import PATH_KEYS, SECRET_KEYS, Config, key_fields
from .rules import validate


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
    explicit: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Load, override from the environment, coerce and validate; raise ConfigError on any fault."""
    environ = os.environ if environ is None else environ
    path = find_config_path(explicit)
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_toml(path)
    known = {f.name: f for f in key_fields()}
    source = str(path) if path else "defaults"
    for key in raw:
        if key not in known:
            raise ConfigError(f"unknown config key '{key}' in {source}")
    chosen: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name, f in known.items():
        variable = f"NEWSLETTER_{name.upper()}"
        if variable in environ:
            chosen[name] = values.coerce(name, f, environ[variable], variable, SECRET_KEYS)
            origins[name] = variable
        elif name in raw:
            chosen[name] = values.coerce(name, f, raw[name], source, SECRET_KEYS)
            origins[name] = source
    base_dir = (path.parent if path else Path.cwd()).resolve()
    for key in PATH_KEYS:
        if key in chosen:
            chosen[key] = Path(chosen[key])
    chosen.setdefault("smtp_max_connections", chosen.get("concurrency", Config.concurrency))
    if "dkim_private_key" in chosen:  # a PEM pasted into a variable ends with a line break
        chosen["dkim_private_key"] = chosen["dkim_private_key"].strip()
    warnings = (values.file_secret_warnings(raw, source, SECRET_KEYS)
                + values.env_warnings(environ, known))
    config = Config(base_dir=base_dir, source=source, origins=origins, warnings=warnings,
                    **chosen)
    config = _resolve_paths(config)
    validate(config)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # TOML is UTF-8; say where the first other byte is (not what it is: it may be part of
        # a secret) instead of tomllib's bare UnicodeDecodeError.
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 text (at line {line}, column "
                          f"{column}); save the file as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


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


