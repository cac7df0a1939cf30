"""Read the rendered HTML once: its elements, style blocks, visible text and Outlook branches.

Outlook-only code sits in conditional comments (``<!--[if mso]> ... <![endif]-->``), which an
HTML parser sees as comments, so it never shows up as elements here; what the document hides
from Outlook (``<!--[if !mso]><!--> ... <!--<![endif]-->``, or ``mso-hide:all``) is marked.
Elements inside a ``display:none`` element are marked hidden: no reader sees them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from .css import declarations, hides

VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr",
})
_NO_TEXT = frozenset({"head", "style", "script", "title", "template"})
_NOT_MSO_START = re.compile(r"^\[if\s+!\s*mso", re.I)
_MSO_BLOCK = re.compile(r"^\[if\s+[^\]]*\bmso\b[^\]]*\]>.*<table", re.I | re.S)


@dataclass(frozen=True)
class Element:
    tag: str
    attrs: dict[str, str]
    line: int
    hidden: bool = False       # display:none on it or on an ancestor
    not_outlook: bool = False  # kept from Outlook on Windows by the document itself

    @property
    def style(self) -> str:
        return self.attrs.get("style", "")


@dataclass
class Document:
    elements: list[Element] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)  # <style> blocks that apply to every screen
    media_styles: list[str] = field(default_factory=list)  # <style media="...">
    text_parts: list[str] = field(default_factory=list)
    mso_tables: bool = False  # Outlook-only tables in conditional comments (MJML's fallback)

    @property
    def text(self) -> str:
        """The visible text, whitespace collapsed."""
        return " ".join(" ".join(self.text_parts).split())

    def tags(self, *names: str) -> list[Element]:
        return [e for e in self.elements if e.tag in names]


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doc = Document()
        self.stack: list[tuple[str, bool, bool]] = []  # tag, hidden, not_outlook
        self.not_mso_region = False

    def _state(self) -> tuple[bool, bool, bool]:
        hidden = any(h for _, h, _ in self.stack)
        not_outlook = self.not_mso_region or any(n for _, _, n in self.stack)
        no_text = any(t in _NO_TEXT for t, _, _ in self.stack)
        return hidden, not_outlook, no_text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        hidden, not_outlook, _ = self._state()
        style = values.get("style", "")
        own_hidden = bool(style) and hides(style)
        own_not_outlook = bool(style) and _mso_hidden(style)
        self.doc.elements.append(Element(
            tag, values, self.getpos()[0], hidden or own_hidden, not_outlook or own_not_outlook
        ))
        if tag not in VOID:
            self.stack.append((tag, own_hidden, own_not_outlook))
        elif tag == "br":
            self.doc.text_parts.append("\n")

    def handle_startendtag(self, tag: str, attrs) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if not any(t == tag for t, _, _ in self.stack):
            return
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        hidden, _, no_text = self._state()
        if self.stack and self.stack[-1][0] == "style":
            media = self.doc.elements and self.doc.elements[-1].attrs.get("media", "").strip()
            if media and media.lower() != "all":
                self.doc.media_styles.append(data)
            else:
                self.doc.styles.append(data)
        elif not hidden and not no_text:
            self.doc.text_parts.append(data)

    def handle_comment(self, data: str) -> None:
        if _NOT_MSO_START.match(data):
            self.not_mso_region = True
        elif data.strip().lower() == "<![endif]":
            self.not_mso_region = False
        elif _MSO_BLOCK.match(data):
            self.doc.mso_tables = True


def _mso_hidden(style: str) -> bool:
    return any(d.name == "mso-hide" and d.value.lower() == "all" for d in declarations(style))


def parse(html: str) -> Document:
    scanner = _Scanner()
    scanner.feed(html)
    scanner.close()
    return scanner.doc
