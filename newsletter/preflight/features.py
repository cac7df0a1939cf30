"""The caniemail features an HTML document uses: elements, attributes, CSS properties, values.

Each use records whether Outlook on Windows is spared it (see clients.py for why that
matters): the document keeps it from Outlook itself, or gives Outlook tables of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .caniemail import Catalog
from .css import Declaration, declarations, stylesheet
from .htmlscan import Document, Element

# Every email has these; a client that rewrites them (Gmail turns <body> into a <div>) keeps
# the content, and <style> only carries what the inliner already copied into style attributes
# plus enhancements (@media, :hover) that the inline styles do without.
STRUCTURAL = frozenset({"html", "head", "body", "title", "meta", "style", "tbody"})
_TAGS = {
    **{f"h{n}": "html-h1-h6" for n in range(1, 7)},
    **dict.fromkeys(("ul", "ol", "li", "dl", "dt", "dd"), "html-lists"),
    **dict.fromkeys(("article", "aside", "details", "figcaption", "figure", "footer", "header",
                     "main", "mark", "nav", "section", "summary", "time"), "html-semantics"),
}
_ATTRIBUTES = {"srcset": "html-srcset", "sizes": "html-srcset",
               "loading": "html-loading-attribute"}
_IMAGE_TYPES = {"webp": "webp", "svg": "svg", "avif": "avif", "bmp": "bmp", "tif": "tiff",
                "tiff": "tiff", "ico": "ico", "heic": "heif", "heif": "heif", "apng": "apng",
                "png": "png", "jpg": "jpg", "jpeg": "jpg", "gif": "gif"}
_FUNCTIONS = {
    "linear-gradient": "css-linear-gradient", "radial-gradient": "css-radial-gradient",
    "conic-gradient": "css-conic-gradient", "calc": "css-unit-calc", "var": "css-variables",
    "rgb": "css-rgb", "rgba": "css-rgba", "min": "css-function-min",
    "max": "css-function-max", "clamp": "css-function-clamp",
    "light-dark": "css-function-light-dark", "lch": "css-modern-color",
    "oklch": "css-modern-color", "lab": "css-modern-color", "oklab": "css-modern-color",
}
_DISPLAY = {"flex": "css-display-flex", "inline-flex": "css-display-flex",
            "grid": "css-display-grid", "inline-grid": "css-display-grid",
            "none": "css-display-none"}
_AT_RULES = {"font-face": "css-at-font-face", "import": "css-at-import",
             "keyframes": "css-at-keyframes"}
_FUNCTION = re.compile(r"([a-z-]+)\(", re.I)
_UNIT = re.compile(r"(?<![\w#.-])[-+]?(?:\d+\.?\d*|\.\d+)(rem|em|ex|ch|vh|vw|vmin|vmax|cm|mm|in"
                   r"|pc|pt|px|%)(?![\w-])", re.I)


@dataclass(frozen=True)
class Use:
    slug: str
    shown: str
    outlook_spared: bool


def uses(doc: Document, catalog: Catalog) -> dict[str, Use]:
    """Each feature used, by slug; spared from Outlook only if every use of it is."""
    found: dict[str, Use] = {}

    def add(slug: str | None, shown: str, spared: bool) -> None:
        if not slug or not catalog.has(slug):
            return
        seen = found.get(slug)
        if seen is None or (seen.outlook_spared and not spared):
            found[slug] = Use(slug, shown, spared)

    for element in doc.elements:
        if not element.hidden:
            _element_uses(element, doc.mso_tables, catalog, add)
    for sheet in doc.styles:
        sheet_declarations, at_rules = stylesheet(sheet)
        for declaration in sheet_declarations:
            _declaration_uses(declaration, doc.mso_tables, catalog, add)
        for keyword in at_rules:
            add(_AT_RULES.get(keyword), f"@{keyword}", doc.mso_tables)
    return found


def _element_uses(element: Element, mso_tables: bool, catalog: Catalog, add) -> None:
    tag = element.tag
    spared = element.not_outlook
    if tag not in STRUCTURAL:
        if tag in ("input", "button"):
            add(f"html-{tag}-{element.attrs.get('type', 'text').lower()}", f"<{tag}>", spared)
        else:
            add(_TAGS.get(tag, f"html-{tag}"), f"<{tag}>", spared)
    # Attributes and CSS: MJML's Outlook tables (or the document's own hiding) cover Outlook.
    spared = spared or mso_tables
    for name in element.attrs:
        slug = _ATTRIBUTES.get(name, f"html-{name}")
        if name not in ("style", "class", "href", "src"):
            add(slug, f"the {name} attribute", spared)
    href = element.attrs.get("href", "").strip().lower()
    if href.startswith("mailto:"):
        add("html-mailto-links", "mailto: links", spared)
    elif href.startswith("#") and len(href) > 1:
        add("html-anchor-links", "links to anchors (#...)", spared)
    if tag == "img":
        _image_uses(element.attrs.get("src", ""), spared, add)
    for declaration in declarations(element.style):
        _declaration_uses(declaration, spared, catalog, add)


def _image_uses(src: str, spared: bool, add) -> None:
    src = src.strip().lower()
    if src.startswith("data:"):
        add("image-base64", "images inlined as data: URLs", spared)
        return
    extension = src.split("?")[0].split("#")[0].rpartition(".")[2]
    kind = _IMAGE_TYPES.get(extension)
    if kind:
        add(f"image-{kind}", f"{kind.upper()} images", spared)


def _declaration_uses(d: Declaration, spared: bool, catalog: Catalog, add) -> None:
    if d.in_media:
        return  # refines a layout the inline styles already give
    if d.name.startswith("--"):
        add("css-variables", "CSS custom properties", spared)
        return
    if d.name.startswith(("-", "mso-")):
        return  # vendor extensions: meant for one client, ignored by the rest
    add(catalog.css_property(d.name), f"CSS {d.name}", spared)
    value = d.value.lower()
    if d.important:
        add("css-important", "!important", spared)
    if d.name == "display":
        add(_DISPLAY.get(value), f"display:{value}", spared)
    elif d.name == "flex-direction" and value.startswith("column"):
        add("css-flex-direction", f"flex-direction:{value}", spared)
    elif d.name == "flex-wrap" and value.startswith("wrap"):
        add("css-flex-wrap", f"flex-wrap:{value}", spared)
    for function in _FUNCTION.findall(value):
        add(_FUNCTIONS.get(function), f"{function}()", spared)
    for unit in _UNIT.findall(value):
        unit = unit.lower()
        add("css-unit-percent" if unit == "%" else f"css-unit-{unit}", f"{unit} units", spared)
