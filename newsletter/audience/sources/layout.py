"""A file's header read against a source: which column is which field, which become
attributes, which are dropped, and what kind of export the file is. Every problem with the
header, or with ``--map``, is one ``SubscriberError`` naming the file and the column."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import SubscriberError
from ...text import strip_spaces
from ..model import EMAIL_COLUMNS, EXPORT_COLUMNS
from ..subscribers import attribute_name
from .base import IGNORE, Fields, Source


@dataclass(frozen=True)
class Layout:
    fields: Mapping[str, int]      # field -> column index
    headers: Mapping[str, str]     # field -> the column's name as written
    attributes: Mapping[str, int]  # attribute name -> column index
    width: int                     # columns named in the header
    kind: str                      # the source's kind of file

    def read(self, cells: list[str]) -> Fields:
        return Fields({name: cell(cells, i) for name, i in self.fields.items()}, self.headers)

    def attribute_values(self, cells: list[str]) -> dict[str, Any]:
        return {key: value for key, i in self.attributes.items() if (value := cell(cells, i))}


def cell(cells: list[str], index: int) -> str:
    # Spaces go, a line break or control character stays (and is refused by the checks).
    return strip_spaces(cells[index]) if index < len(cells) else ""


def parse_map(items: Iterable[str]) -> dict[str, str]:
    """``--map`` values (``COLUMN=field``) as {column: field}."""
    out: dict[str, str] = {}
    for item in items:
        column, sep, name = item.rpartition("=")
        if not sep or not column.strip() or not name.strip():
            raise SubscriberError(f"--map expects COLUMN=field, got {item!r}")
        out[column.strip()] = name.strip().lower()
    return out


def plan(source: Source, path: Path, line: int, names: list[str],
         mapping: Mapping[str, str]) -> Layout:
    """The layout of a header (``names``, on ``line`` of ``path``) for ``source``."""
    chosen = _mapped(source, path, line, names, mapping)
    for i, name in enumerate(names):
        low = name.lower()
        if i not in chosen and (low in source.columns or low in source.ignored):
            chosen[i] = source.columns.get(low, IGNORE)
    fields: dict[str, int] = {}
    for i, name in chosen.items():  # --map's choices first: they win over a column's name
        if name != IGNORE:
            fields.setdefault(name, i)
    if "email" not in fields:
        raise _no_email(source, path, line, names)
    taken = set(chosen) | set(fields.values())
    attributes = _attributes(path, line, names, taken) if source.extra_attributes else {}
    return Layout(fields, {name: names[i] for name, i in fields.items()}, attributes,
                  len(names), source.kind(frozenset(n.lower() for n in names)))


def _mapped(source: Source, path: Path, line: int, names: list[str],
            mapping: Mapping[str, str]) -> dict[int, str]:
    index = {name.lower(): i for i, name in enumerate(names)}
    chosen: dict[int, str] = {}
    for column, name in mapping.items():
        if column.lower() not in index:
            raise SubscriberError(f"{path}, line {line}: --map names the column {column!r}, "
                                  f"which the header does not have (found: {', '.join(names)})")
        if name not in source.fields:
            raise SubscriberError(f"{path}: --map {column}={name}: unknown field {name!r}; "
                                  f"expected one of: {', '.join(source.fields)}")
        chosen[index[column.lower()]] = name
    return chosen


def _no_email(source: Source, path: Path, line: int, names: list[str]) -> SubscriberError:
    if any("@" in name for name in names):
        return SubscriberError(f"{path}: no header row (line {line} looks like data); "
                               "add a first line such as 'email,name'")
    which = "" if source.name == "csv" else f" (is it a {source.title} export?)"
    return SubscriberError(f"{path}, line {line}: no {source.email_header!r} column in the "
                           f"header{which} (found: {', '.join(names)})")


def _attributes(path: Path, line: int, names: list[str], taken: set[int]) -> dict[str, int]:
    """Every other column as an attribute, by its stored name."""
    extra: dict[str, int] = {}
    for i, name in enumerate(names):
        if i in taken or name.lower() in EMAIL_COLUMNS:
            continue
        key = attribute_name(name)
        if not key or key in extra or key in EXPORT_COLUMNS or key in EMAIL_COLUMNS:
            raise SubscriberError(
                f"{path}, line {line}: column {name!r} cannot be an attribute "
                f"(it becomes {key!r}, which is empty, reserved or another column's name)"
            )
        extra[key] = i
    return extra
