"""Email-client support: the features the HTML uses, held against caniemail's data.

The rule, for Gmail, Outlook and Apple Mail, on each platform's latest tested version:

- A feature a platform does not support ("n") is a warning naming the platforms; one
  partly supported ("a", with caniemail's notes on the limits) goes into a single note per
  report, since the limits are mostly about particular values or elements.
- What has a fallback does not count:
  - code inside ``<!--[if mso]>`` comments is Outlook's own and is not examined; what sits
    between ``<!--[if !mso]><!-->`` and ``<!--<![endif]-->``, or under ``mso-hide:all``,
    is not held against Outlook on Windows;
  - when the HTML has Outlook-only tables in conditional comments (MJML emits them around
    every section and column), Outlook on Windows (the Word engine, and Windows Mail) is not
    held to CSS or attributes: it lays the email out from those tables, and the rest of the
    styling degrades to plain text formatting;
  - declarations inside ``@media`` blocks (and ``@media`` itself) refine a layout the inline
    styles already give, so a client without them shows the mobile-first layout;
  - elements under ``display:none`` (the preheader) are meant to be unseen and are hidden
    several ways at once, so their styles are not checked;
  - the document's skeleton (``<html>``, ``<head>``, ``<body>``, ``<style>``, ...) is in
    every email; see features.STRUCTURAL.
- Vendor properties (``-webkit-*``, ``mso-*``) and anything caniemail does not list are not
  checked.
"""

from __future__ import annotations

from datetime import date

from .caniemail import FAMILIES, Catalog, Support
from .features import Use, uses
from .findings import Finding, note, warning
from .htmlscan import Document

OUTLOOK_WINDOWS = frozenset({"windows", "windows-mail"})
STALE_DAYS = 365


def check_clients(doc: Document, catalog: Catalog, *, today: date | None = None
                  ) -> list[Finding]:
    findings: list[Finding] = []
    partial: dict[str, list[str]] = {family: [] for family in FAMILIES}
    for slug, use in sorted(uses(doc, catalog).items()):
        lacking = []
        for family, family_name in FAMILIES.items():
            support = [s for s in catalog.support(slug, family) if not _spared(family, s, use)]
            missing = [s for s in support if s.level == "n"]
            if missing:
                lacking.append(_where(family_name, missing, support, catalog))
            elif any(s.level == "a" for s in support):
                partial[family].append(use.shown)
        if lacking:
            findings.append(warning(
                "clients.unsupported",
                f"{use.shown}: not supported in {'; '.join(lacking)}.",
                f"Drop it or give those clients a fallback: {catalog.url(slug)}",
            ))
    listed = [f"{FAMILIES[f]}: {', '.join(sorted(set(names)))}"
              for f, names in partial.items() if names]
    if listed:
        findings.append(note(
            "clients.partial",
            f"Partial support (limits on some values or elements): {'; '.join(listed)}.",
            "If something looks wrong in one client, caniemail.com lists each feature's "
            "limits.",
        ))
    if today is not None and (today - catalog.updated_on).days > STALE_DAYS:
        findings.append(note(
            "clients.data-old",
            f"The email-client data is from {catalog.updated_on.isoformat()}, over a year old.",
            "Refresh it (newsletter.preflight.caniemail.refresh).",
        ))
    return findings


def _spared(family: str, support: Support, use: Use) -> bool:
    return family == "outlook" and support.platform in OUTLOOK_WINDOWS and use.outlook_spared


def _where(family_name: str, missing: list[Support], support: list[Support],
           catalog: Catalog) -> str:
    if len(missing) == len(support):
        return f"{family_name} (all)"
    names = ", ".join(catalog.platform_names.get(s.platform, s.platform) for s in missing)
    return f"{family_name} ({names})"
