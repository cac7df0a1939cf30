"""CSS declarations out of style attributes and <style> blocks (tinycss2 does the parsing)."""

from __future__ import annotations

from dataclasses import dataclass

import tinycss2


@dataclass(frozen=True)
class Declaration:
    name: str  # lower case
    value: str
    important: bool = False
    in_media: bool = False  # inside an @media (or @supports) block


def declarations(style: str) -> list[Declaration]:
    """The declarations of one ``style`` attribute; malformed ones are skipped."""
    return _from_contents(tinycss2.parse_blocks_contents(style), in_media=False)


def stylesheet(text: str) -> tuple[list[Declaration], list[str]]:
    """Every declaration of a style sheet, and the at-rules it uses (``font-face``, ...)."""
    found: list[Declaration] = []
    at_rules: list[str] = []
    _walk(tinycss2.parse_stylesheet(text, skip_whitespace=True, skip_comments=True),
          found, at_rules, in_media=False)
    return found, at_rules


def _walk(rules, found: list[Declaration], at_rules: list[str], *, in_media: bool) -> None:
    for rule in rules:
        if rule.type == "qualified-rule" and rule.content is not None:
            found += _from_contents(tinycss2.parse_blocks_contents(rule.content),
                                    in_media=in_media)
        elif rule.type == "at-rule":
            keyword = rule.lower_at_keyword
            at_rules.append(keyword)
            if rule.content is None:
                continue
            if keyword in ("media", "supports"):
                nested = tinycss2.parse_rule_list(rule.content, skip_whitespace=True,
                                                  skip_comments=True)
                _walk(nested, found, at_rules, in_media=True)
            # Other at-rules (@font-face, @keyframes) hold descriptors, not properties.


def _from_contents(nodes, *, in_media: bool) -> list[Declaration]:
    out = []
    for node in nodes:
        if node.type != "declaration":
            continue
        value = tinycss2.serialize(node.value).strip()
        out.append(Declaration(node.lower_name, value, node.important, in_media))
    return out


def hides(style: str) -> bool:
    """True when the style attribute takes the element out of the page (display:none)."""
    return any(
        d.name == "display" and d.value.lower() == "none" for d in declarations(style)
    )
