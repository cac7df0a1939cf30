"""Rules on images: alt text for readers with images off, and a width attribute for Outlook.

Outlook on Windows sizes an image by its ``width`` attribute and ignores CSS widths; without
one a large image bursts the layout. ``alt=""`` is fine: it marks a decorative image.
"""

from __future__ import annotations

from .findings import Finding, warning
from .htmlscan import Document


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


def _name(attrs: dict[str, str]) -> str:
    src = attrs.get("src", "").strip()
    if src.startswith("data:"):
        return src[:30] + "..."
    return src or "(no src)"


def _images(found: list[str]) -> str:
    return "1 image has" if len(found) == 1 else f"{len(found)} images have"


def _first(found: list[str]) -> str:
    return found[0] if len(found) == 1 else f"{found[0]} and {len(found) - 1} more"
