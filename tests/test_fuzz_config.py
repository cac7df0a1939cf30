"""Fuzzing configuration values: every key, from the file and from its environment variable.
The invariant: a one-line ConfigError naming the key (and never a secret's value), or a Config
whose text values are one line each; never a traceback."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from newsletter.config import SECRET_KEYS, Config, load_config
from newsletter.errors import ConfigError
from newsletter.text import has_control

KEYS = [f.name for f in dataclasses.fields(Config)
        if f.name not in ("base_dir", "source", "origins", "warnings")]
HOSTILE = st.sampled_from(["inf", "-inf", "nan", "1e999", "9" * 5000, "0", "-1", "2.5", " ",
                           "\n", "\r\n", "\x0b", "\u2028", "\x00", "\t", "true", "[]", "a,b",
                           "x@example.com", "Name <x@example.com>", "https://x.example",
                           "Europe/Berlin", "../../etc", "postmark", "\ufeff"])
value = st.lists(st.text(max_size=8) | HOSTILE, max_size=4).map("".join)
toml_value = st.one_of(
    st.integers(), st.floats(), st.booleans(), value,
    st.lists(value, max_size=3), st.dictionaries(st.sampled_from(["a", "b"]), value, max_size=2))
FUZZ = settings(max_examples=300, deadline=2000,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(key=st.sampled_from(KEYS), raw=value)
def test_any_environment_value_is_one_clear_error_or_a_clean_config(tmp_path, key, raw):
    path = tmp_path / "newsletter.toml"
    path.write_text("", encoding="utf-8")
    variable = f"NEWSLETTER_{key.upper()}"
    _check(key, raw, lambda: load_config(path, environ={variable: raw}), variable)


@FUZZ
@given(key=st.sampled_from(KEYS), raw=toml_value)
def test_any_file_value_is_one_clear_error_or_a_clean_config(tmp_path, key, raw):
    path = tmp_path / "newsletter.toml"
    try:
        path.write_text(_toml(key, raw), encoding="utf-8")
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeEncodeError):
        return  # not expressible as a TOML file
    _check(key, raw, lambda: load_config(path, environ={}), str(path))


def _check(key, raw, load, where: str) -> None:
    try:
        config = load()
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message
        assert "config key '" in message
        if f"config key '{key}'" in message:  # not a rule between keys: says where it was set
            assert where in message
        if key in SECRET_KEYS and isinstance(raw, str) and len(raw.strip()) >= 4:
            assert raw.strip() not in message
        event("refused")
        return
    event("accepted")
    for f in dataclasses.fields(config):
        item = getattr(config, f.name)
        for v in item if isinstance(item, tuple) else (item,):
            if isinstance(v, str) and f.name != "sendgrid_webhook_public_key":
                assert not has_control(v), (f.name, v)


def _toml(key: str, raw) -> str:
    import json

    def encode(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(v), repr(v))
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(encode(x) for x in v) + "]"
        return "{" + ", ".join(f"{k} = {encode(x)}" for k, x in v.items()) + "}"

    return f"{key} = {encode(raw)}\n"


def test_the_fuzz_covers_every_key():
    assert len(KEYS) >= 40 and "secret_key_previous" in KEYS and Path(__file__).is_file()
