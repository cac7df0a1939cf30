"""A week's items handed over as JSON (``newsletter new --from FILE.json``), checked.

The shape is ``newsletter/schemas/items.schema.json`` (JSON Schema, draft 2020-12), checked
with ``jsonschema``; what a schema cannot say is checked here too: a key given twice, text
that is not Unicode (an unpaired surrogate escape). Every problem is one line naming the
JSON path (``$.items[2].url: must be an http(s) address``), and all of them are reported at
once, so an assistant that wrote the file can fix everything in one go.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from ..edition.content import parse_week
from ..errors import ContentError
from . import schema_messages
from .week_files import ItemData, WeekData

SCHEMA_FILE = "items.schema.json"


class ItemsError(ContentError):
    """The JSON is not a valid week: ``problems`` has one line per fault."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {problems[0]}" if len(problems) == 1 else
                         f"{source}: {len(problems)} problems, the first: {problems[0]}")


def schema_text() -> str:
    return (resources.files("newsletter") / "schemas" / SCHEMA_FILE).read_text("utf-8")


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(schema_text()))


def parse_items(raw: bytes, source: str) -> WeekData:
    """The week in ``raw`` (the bytes of a JSON file), or ItemsError listing every problem."""
    data = _decode(raw, source)
    problems = _walk(data, "$")
    problems += schema_messages.describe(_validator().iter_errors(data))
    if not problems and data.get("week"):
        problems += _calendar(data["week"])
    if problems:
        raise ItemsError(source, problems)
    return _week(data)


class _Object(dict):
    """A JSON object that remembers the keys it was given more than once."""

    duplicates: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    seen: set[str] = set()
    obj.duplicates = []
    for key, _ in pairs:
        if key in seen:
            obj.duplicates.append(key)
        seen.add(key)
    return obj


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _decode(raw: bytes, source: str) -> Any:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ItemsError(source, [f"not UTF-8 text (byte {exc.start})"]) from None
    if not text.strip():
        raise ItemsError(source, ["empty; expected a JSON object (see `newsletter schema items`)"])
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ItemsError(source, [f"line {exc.lineno} column {exc.colno}: not valid JSON: "
                                  f"{exc.msg}"]) from None
    except RecursionError:
        raise ItemsError(source, ["nested too deeply to be a week's items"]) from None
    except ValueError as exc:  # NaN, Infinity, a number with thousands of digits
        raise ItemsError(source, [f"not valid JSON: {exc}"]) from None


def _walk(value: Any, path: str) -> list[str]:
    """Problems JSON Schema cannot see: repeated keys, text that is not Unicode."""
    problems: list[str] = []
    if isinstance(value, _Object):
        problems += [f"{schema_messages.child(path, k)}: given twice" for k in value.duplicates]
        for key, item in value.items():
            problems += _walk(item, schema_messages.child(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += _walk(item, f"{path}[{index}]")
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(value[exc.start])
            problems.append(f"{path}: not Unicode text (an unpaired surrogate, \\u{code:04x})")
    return problems


def _calendar(week: str) -> list[str]:
    try:
        parse_week(week)
    except ContentError as exc:
        return [f"$.week: {str(exc).partition(': ')[2]}"]
    return []


def _text(data: dict, key: str) -> str:
    return data.get(key, "").strip()


def _week(data: dict) -> WeekData:
    items = tuple(
        ItemData(title=_text(item, "title"), body=item["body"].strip(),
                 **{key: _text(item, key) for key in ("take", "source", "url")})
        for item in data["items"]
    )
    return WeekData(headline=_text(data, "headline"), items=items,
                    intro=data.get("intro", "").strip(), week=_text(data, "week"),
                    **{key: _text(data, key) for key in ("dek", "preheader", "subject")})
