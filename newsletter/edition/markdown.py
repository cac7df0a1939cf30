"""Markdown to HTML (for the HTML part) and to plain text (for the text part).

Raw HTML in Markdown is not passed through: items may be written by an assistant, and the
template decides the markup. In the text part a link is written ``text (url)``.

Both take an optional ``link``: a function from a link's (normalized) href to the href to
write, which the render gives when it counts clicks (``click_links.ItemLinks``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "typographer": True}).enable(
        ["replacements", "smartquotes"]
    )


Link = Callable[[str], str]


def to_html(source: str, link: Link | None = None) -> str:
    parser = _parser()
    if link is None:
        return parser.render(source).strip()
    tokens = parser.parse(source)
    for token in tokens:
        for child in token.children or ():
            if child.type == "link_open":
                child.attrs["href"] = link(str(child.attrs.get("href", "")))
    return parser.renderer.render(tokens, parser.options, {}).strip()


def to_text(source: str, width: int = 72, link: Link | None = None) -> str:
    """Plain text: paragraphs wrapped at ``width``, lists as ``- item``, links as ``text (url)``."""
    blocks: list[str] = []
    prefix = ""
    for token in _parser().parse(source):
        if token.type == "bullet_list_open":
            prefix = "- "
        elif token.type == "ordered_list_open":
            prefix = "1. "
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            prefix = ""
        elif token.type == "inline":
            blocks.append(_wrap(_inline_text(token, link), width, prefix))
        elif token.type in ("fence", "code_block"):
            blocks.append(token.content.rstrip("\n"))
    return "\n\n".join(blocks)


def images(source: str) -> list[tuple[str, str]]:
    """Each image the Markdown writes, in order: its ``src`` and the alt text its author gave
    (``![](chart.png)`` gives ``""``, which the HTML cannot tell from a deliberate ``alt=""``)."""
    found = []
    for token in _parser().parse(source):
        for child in token.children or ():
            if child.type == "image":
                found.append((str(child.attrs.get("src", "")), child.content))
    return found


def _wrap(text: str, width: int, prefix: str) -> str:
    indent = " " * len(prefix)
    return textwrap.fill(
        text,
        width=width,
        initial_indent=prefix,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _inline_text(token: Token, link: Link | None = None) -> str:
    out: list[str] = []
    hrefs: list[str] = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif child.type == "link_open":
            hrefs.append(str(child.attrs.get("href", "")))
        elif child.type == "link_close":
            href = hrefs.pop() if hrefs else ""
            if href:
                out.append(f" ({link(href) if link else href})")
        elif child.type == "image":
            out.append(child.content)
    return "".join(out).strip()
