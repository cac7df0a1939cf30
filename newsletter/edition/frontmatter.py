"""Front matter: the ``key: value`` lines between the two ``---`` lines of an edition or item.

Every value is text. YAML would make ``2026-02-30`` a date (and fail), ``yes`` a boolean and
a 5000-digit number an integer Python refuses to convert; here only an empty value is special
(it means "not given"), every other plain value is the text as written. Lists, mappings, a key
given twice, nesting deep enough to exhaust the parser, and control characters are each one
``ContentError`` naming the file, the line where there is one, and the field.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import ContentError, HeaderError
from ..text import has_control

# Fields that become a mail header (the subject, built from the headline).
HEADER_FIELDS = ("headline", "subject")


class _TextLoader(yaml.SafeLoader):
    """YAML with no implicit types but null: values are text as written."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag == "tag:yaml.org,2002:null"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _value in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in seen:
                raise _Duplicate(key, key_node.start_mark.line)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Duplicate(Exception):
    def __init__(self, key: str, line: int):
        self.key, self.line = key, line


def parse(path: Path, source: str, fields: dict[str, bool], first_line: int = 2) -> dict:
    """The checked fields of ``source`` (the lines between the ``---`` markers, the first of
    which is line ``first_line`` of the file)."""
    data = _load(path, source, first_line)
    if not isinstance(data, dict):
        raise ContentError(f"{path}:{first_line}: front matter must be 'key: value' lines")
    meta: dict[str, str] = {}
    for key, value in data.items():
        if key not in fields:
            allowed = ", ".join(fields)
            raise ContentError(f"{path}: unknown field {str(key)!r} (allowed: {allowed})")
        if value is None:
            continue
        if not isinstance(value, str):
            kind = "a list" if isinstance(value, list) else "a set of fields"
            raise ContentError(f"{path}: field {key!r} must be text, got {kind} "
                               f"(put the value in quotes to keep it as written)")
        value = value.strip()
        if has_control(value):
            error = HeaderError if key in HEADER_FIELDS else ContentError
            raise error(f"{path}: field {key!r} must be one line (it becomes "
                        f"{'a header' if key in HEADER_FIELDS else 'one line of text'}), "
                        "without control characters")
        meta[key] = value
    for key, required in fields.items():
        if required and not meta.get(key):
            raise ContentError(f"{path}: missing required field {key!r}")
    return meta


MAX_DEPTH = 64  # brackets within brackets; fields hold text, so any depth is a mistake


def _load(path: Path, source: str, first_line: int):
    if not source.strip():
        return {}
    if _flow_depth(source) > MAX_DEPTH:
        # PyYAML recurses once per level, slowly: refuse before it starts.
        raise ContentError(f"{path}: front matter is nested too deeply; fields hold text")
    try:
        return yaml.load(source, Loader=_TextLoader)  # a SafeLoader, no implicit types
    except _Duplicate as dup:
        raise ContentError(f"{path}:{dup.line + first_line}: field {dup.key!r} is given twice"
                           ) from None
    except RecursionError:
        raise ContentError(f"{path}: front matter is nested too deeply; fields hold text"
                           ) from None
    except yaml.YAMLError as exc:
        raise ContentError(_describe(path, source, exc, first_line)) from None


def _flow_depth(source: str) -> int:
    """How deep ``[`` and ``{`` nest outside quotes (an upper bound is enough)."""
    depth = deepest = 0
    quote = ""
    for char in source:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
        elif char == "\n":
            quote = ""
    return deepest


def _describe(path: Path, source: str, exc: yaml.YAMLError, first_line: int) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "invalid YAML"
    if mark is None:
        return f"{path}:{first_line}: malformed front matter: {problem}"
    line = mark.line + first_line
    text = f"{path}:{line}: malformed front matter: {problem}"
    if "mapping values are not allowed" in problem:
        key, _, value = source.splitlines()[mark.line].partition(":")
        value = value.strip().replace('"', '\\"')
        text += f'; a value with a colon must be in quotes: {key.strip()}: "{value}"'
    return text
