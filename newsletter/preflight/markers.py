"""Leftover markers: template syntax or recipient placeholders that a reader would see.

Recipient placeholders look like ``@@<nonce>:<field>@@`` (see the edition's placeholders);
the sender fills in each one, so any left in a finished message is a bug. Jinja syntax
(``{{``, ``{%``, ``{#``) in a finished message came from content that was never rendered,
such as a merge tag pasted from another tool. Style blocks are left out: CSS has braces.
"""

from __future__ import annotations

import re

from .findings import Finding, error

PLACEHOLDER = re.compile(r"@@[A-Za-z0-9]+:[A-Za-z0-9_.\-]+@@")
TEMPLATE = re.compile(r"\{\{.{0,40}?\}\}|\{%.{0,40}?%\}|\{#.{0,40}?#\}|\{\{|\{%|\{#", re.S)
_STYLE = re.compile(r"<style\b[^>]*>.*?</style\s*>", re.I | re.S)


def check_markers(*, subject: str, preheader: str, html: str, text: str) -> list[Finding]:
    parts = {
        "subject": subject,
        "preheader": preheader,
        "HTML part": _STYLE.sub(" ", html),
        "text part": text,
    }
    placeholders = {where: PLACEHOLDER.findall(value) for where, value in parts.items()}
    templates = {where: TEMPLATE.findall(value) for where, value in parts.items()}
    findings = []
    if any(placeholders.values()):
        where, first = _where(placeholders)
        findings.append(error(
            "content.placeholder-left",
            f"{where} still {_verb(placeholders)} a recipient placeholder: {first}.",
            "Render the edition again from the templates; a placeholder left in the output "
            "was copied in from another render.",
        ))
    if any(templates.values()):
        where, first = _where(templates)
        findings.append(error(
            "content.template-left",
            f"{where} {_verb(templates, 'contain')} template syntax: {_show(first)}.",
            "Edition and item text is not a template: write the text itself (to greet the "
            "reader, use recipient.first_name in the templates folder).",
        ))
    return findings


def _where(found: dict[str, list[str]]) -> tuple[str, str]:
    """'The subject and text part', and the first marker found."""
    places = [where for where, hits in found.items() if hits]
    first = found[places[0]][0]
    named = places[0] if len(places) == 1 else ", ".join(places[:-1]) + " and " + places[-1]
    return f"The {named}", first


def _verb(found: dict[str, list[str]], verb: str = "hold") -> str:
    several = sum(1 for hits in found.values() if hits) > 1
    return verb if several else verb + "s"


def _show(snippet: str) -> str:
    return "'" + " ".join(snippet.split()) + "'"
