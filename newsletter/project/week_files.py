"""A week's edition as plain values, and the Markdown files that hold it.

``week_files(data)`` is the inverse of ``edition.content.load_edition``: loading the files it
returns gives back the same headline, fields, intro and items. Front-matter values are
written plain where the front-matter reader takes them back as they are, and in YAML double
quotes (with escapes) where it would not: a colon, a leading quote, ``null``...
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..edition import frontmatter
from ..edition.content import EDITION_FIELDS, ITEM_FIELDS
from ..errors import NewsletterError


@dataclass(frozen=True)
class ItemData:
    title: str
    body: str
    take: str = ""
    source: str = ""
    url: str = ""


@dataclass(frozen=True)
class WeekData:
    headline: str
    items: tuple[ItemData, ...]
    dek: str = ""
    preheader: str = ""
    subject: str = ""
    intro: str = ""
    week: str = ""  # where the data says it belongs; the caller decides


def week_files(data: WeekData) -> dict[str, str]:
    """File name -> text: ``edition.md`` and ``01-slug.md``, ``02-slug.md``, ..."""
    edition = {key: getattr(data, key) for key in EDITION_FIELDS}
    files = {"edition.md": document(edition, data.intro)}
    width = max(2, len(str(len(data.items))))
    for number, item in enumerate(data.items, 1):
        meta = {key: getattr(item, key) for key in ITEM_FIELDS}
        files[f"{number:0{width}d}-{slug(item.title)}.md"] = document(meta, item.body)
    return files


def document(meta: dict[str, str], body: str) -> str:
    lines = ["---"]
    lines += [f"{key}: {value_text(value)}" for key, value in meta.items() if value]
    lines.append("---")
    text = "\n".join(lines) + "\n"
    return text + body_text(body) + ("\n" if body else "")


def body_text(body: str) -> str:
    """Line breaks as the reader sees them (CR LF and a lone CR read back as LF)."""
    return body.replace("\r\n", "\n").replace("\r", "\n").strip()


_PROBE = Path("(value)")


def value_text(value: str) -> str:
    """``value`` as front-matter text: plain when that reads back unchanged, else quoted."""
    try:
        if frontmatter.parse(_PROBE, f"v: {value}", {"v": False}).get("v") == value:
            return value
    except NewsletterError:
        pass
    return quoted(value)


# What may stand unescaped between YAML double quotes: PyYAML's printable set without NEL
# (a line break to YAML); '"' and '\\' are escaped first.
_RAW = re.compile("[\t\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def quoted(value: str) -> str:
    out = ['"']
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif _RAW.match(char):
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def slug(title: str, limit: int = 40) -> str:
    """A file-name part from a title: ``José’s “Big” Week`` -> ``joses-big-week``."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    ascii_text = ascii_text.lower().replace("'", "")
    words = re.findall(r"[a-z0-9]+", ascii_text)
    text = ""
    for word in words:
        if text and len(text) + 1 + len(word) > limit:
            break
        text = f"{text}-{word}" if text else word[:limit]
    return text or "item"
