"""Read one week's folder of Markdown files into an ``Edition``.

Layout::

    items/2026-W47/edition.md    front matter: headline (required), dek, preheader, subject
                                 body: the intro (optional)
    items/2026-W47/01-slug.md    front matter: title (required), take, source, url
                                 body: the item (required)

Items are ordered by file name. Only files named like ``01-slug.md`` are items; dot files
(``.DS_Store``, macOS's ``._01-slug.md``) are ignored, and any other file or folder
(``README.md``, ``draft.md``) is logged as a warning and left out. Every error names the file,
and the line where there is one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from ..errors import ContentError
from . import frontmatter

log = logging.getLogger("newsletter.edition")

# \Z, not $ (which also matches before a final line break: "2026-W51\n" would name a folder);
# ASCII digits only (\d would take "٢٠٢٦" too, and int() reads it as 2026).
WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})\Z", re.ASCII)
ITEM_NAME = re.compile(r"^\d+-[^.].*\.md\Z")
EDITION_FIELDS = {"headline": True, "dek": False, "preheader": False, "subject": False}
ITEM_FIELDS = {"title": True, "take": False, "source": False, "url": False}
HEADER_FIELDS = frontmatter.HEADER_FIELDS


@dataclass(frozen=True)
class Item:
    path: Path
    title: str
    body: str
    take: str = ""
    source: str = ""
    url: str = ""


@dataclass(frozen=True)
class Edition:
    week: str
    folder: Path
    headline: str
    items: tuple[Item, ...]
    intro: str = ""
    dek: str = ""
    preheader: str = ""
    subject: str = ""


def parse_week(value: str) -> str:
    """Check an ISO week like ``2026-W47`` and return it."""
    match = WEEK_RE.match(value or "")
    if not match:
        raise ContentError(f"invalid week {value!r}: expected an ISO week like 2026-W47")
    year, week = int(match[1]), int(match[2])
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ContentError(f"invalid week {value!r}: {year} has no week {week}") from None
    return value


def current_week(timezone: str) -> str:
    from zoneinfo import ZoneInfo

    year, week, _ = datetime.now(ZoneInfo(timezone)).isocalendar()
    return f"{year}-W{week:02d}"


def resolve_week(week: str | None, timezone: str) -> str:
    """The week asked for, checked; the current week in ``timezone`` when none is given."""
    return parse_week(week) if week else current_week(timezone)


def load_edition(items_dir: Path, week: str) -> Edition:
    folder = Path(items_dir) / parse_week(week)
    if not folder.is_dir():
        raise ContentError(f"no folder for week {week}: {folder} does not exist")
    edition_path = folder / "edition.md"
    if not edition_path.is_file():
        raise ContentError(f"{edition_path}: missing (every week needs an edition.md)")
    meta, intro = read_markdown(edition_path, EDITION_FIELDS)
    item_paths = item_files(folder)
    if not item_paths:
        raise ContentError(f"{folder}: no item files (expected files like 01-slug.md)")
    items = tuple(_load_item(p) for p in item_paths)
    return Edition(week=week, folder=folder, items=items, intro=intro, **meta)


def item_files(folder: Path) -> list[Path]:
    """The week's item files in order; a warning for each other file."""
    items = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == "edition.md":
            continue
        if ITEM_NAME.match(path.name) and path.is_file():
            items.append(path)
        else:
            log.warning("%s: not an item (items are files named like 01-slug.md); left out",
                        path)
    return items


def _load_item(path: Path) -> Item:
    meta, body = read_markdown(path, ITEM_FIELDS)
    if not body:
        raise ContentError(f"{path}: the item has no body text below the front matter")
    url = meta.get("url", "")
    if url and not re.match(r"^https?://\S+$", url):
        raise ContentError(f"{path}: field 'url' must be an http(s) address, got {url!r}")
    return Item(path=path, body=body, **meta)


def read_markdown(path: Path, fields: dict[str, bool]) -> tuple[dict[str, str], str]:
    """Split a file into checked front-matter fields and its Markdown body."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContentError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ContentError(f"{path}: cannot read: {exc.strerror}") from None
    text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise ContentError(f"{path}:1: expected front matter starting with a '---' line")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ContentError(f"{path}: front matter is not closed by a '---' line") from None
    meta = frontmatter.parse(path, "\n".join(lines[1:end]), fields)
    body = "\n".join(lines[end + 1 :]).strip()
    return meta, body
