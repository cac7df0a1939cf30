"""jsonschema's validation errors as one line each, in words, naming the JSON path."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KINDS = {"string": "text (a JSON string)", "array": "a list (a JSON array)",
          "object": "an object ({...})"}


def child(path: str, key: str | int) -> str:
    """``$.items`` + ``0`` -> ``$.items[0]``; odd keys in brackets: ``$['two words']``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{key!r}]"


def path_of(parts: Iterable[str | int]) -> str:
    path = "$"
    for part in parts:
        path = child(path, part)
    return path


def describe(errors: Iterable[Any]) -> list[str]:
    """One line per error, in the order the paths appear in the document."""
    lines: list[tuple[tuple, str]] = []
    for error in errors:
        parts = list(error.absolute_path)
        for line in _lines(error, path_of(parts)):
            lines.append((_order(parts), line))
    return [line for _, line in sorted(lines, key=lambda pair: pair[0])]


def _order(parts: list) -> tuple:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in parts)


def _lines(error, path: str) -> list[str]:
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "additionalProperties":
        allowed = ", ".join(k for k in error.schema.get("properties", {}) if k != "$schema")
        unknown = [k for k in instance if k not in error.schema.get("properties", {})]
        return [f"{child(path, k)}: unknown field (allowed: {allowed})" for k in unknown]
    if kind == "required":
        missing = [k for k in value if k not in instance]
        return [f"{child(path, k)}: missing (required)" for k in missing]
    if kind == "type":
        return [f"{path}: must be {_KINDS.get(value, value)}, got {_kind_of(instance)}"]
    if kind == "minItems":
        return [f"{path}: needs at least one item"]
    if kind == "not":
        return [_control(path, value, instance)]
    if kind == "pattern":
        return [_pattern(path, value, instance)]
    return [f"{path}: {error.message}"]


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "text"


def _control(path: str, not_schema: dict, text: str) -> str:
    # The schema's own pattern finds the character (jsonschema matches with ``re`` too).
    found = ord(re.search(not_schema["pattern"], text).group())
    if "2028" in not_schema["pattern"]:  # a one-line field
        return f"{path}: must be one line, without control characters (found U+{found:04X})"
    return f"{path}: control character U+{found:04X} is not allowed (line breaks and tabs are)"


def _pattern(path: str, pattern: str, text: str) -> str:
    if pattern == r"\S":
        return f"{path}: must not be empty"
    if "https?" in pattern:
        return f"{path}: must be an http(s) address, got {text.strip()!r}"
    if "W[0-9]" in pattern:
        return f"{path}: must be an ISO week like 2026-W48, got {text!r}"
    return f"{path}: does not match {pattern!r}"
