"""Rules on images: alt text for readers with images off, and a width attribute for Outlook.

Outlook on Windows sizes an image by its ``width`` attribute and ignores CSS widths; without
one a large image bursts the layout. ``alt=""`` is fine in a template: it marks a decorative
image. In an item it is not: Markdown renders ``![](chart.png)`` as ``alt=""`` too, so an
author who wrote no alt text is told from the Markdown source (``check_source_images``), where
the two can be told apart.
"""

from __future__ import annotations

from .findings import Finding, warning
from .htmlscan import Document
from .inputs import SourceImage


def check_images(doc: Document) -> list[Finding]:
    images = [e for e in doc.tags("img") if not e.hidden]
    no_alt = [_name(e.attrs) for e in images if "alt" not in e.attrs]
    no_width = [_name(e.attrs) for e in images if not e.attrs.get("width", "").strip()]
    findings = []
    if no_alt:
        findings.append(warning(
            "links.image-alt", f"{_images(no_alt)} no alt text: {_first(no_alt)}",
            "Give each image an alt text (alt=\"\" for decoration); many readers see "
            "images blocked at first.",
        ))
    if no_width:
        findings.append(warning(
            "links.image-width", f"{_images(no_width)} no width attribute: {_first(no_width)}",
            "Set width in pixels (mj-image does); Outlook ignores CSS widths.",
        ))
    return findings


def check_source_images(images: tuple[SourceImage, ...]) -> list[Finding]:
    """One warning per image an item's Markdown gives no alt text, naming the file and src."""
    return [warning(
        "links.item-image-alt",
        f"{image.file}: the image {_src(image.src)} has no alt text",
        "Write what the image shows between the brackets: ![Sales by month](chart.png).",
    ) for image in images if not image.alt.strip()]


def _src(src: str) -> str:
    src = src.strip()
    return src[:30] + "..." if src.startswith("data:") else (src or "(no src)")


def _name(attrs: dict[str, str]) -> str:
    return _src(attrs.get("src", ""))


def _images(found: list[str]) -> str:
    return "1 image has" if len(found) == 1 else f"{len(found)} images have"


def _first(found: list[str]) -> str:
    return found[0] if len(found) == 1 else f"{found[0]} and {len(found) - 1} more"
