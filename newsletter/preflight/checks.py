"""Run every preflight rule on one edition and gather the findings into a Report."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from . import caniemail
from .caniemail import Catalog, CatalogError
from .click_domains import check_click_domains
from .clients import check_clients
from .content import check_preheader, check_size, check_subject, check_text_part
from .domain import check_domain
from .findings import Finding, Report, note, warning
from .htmlscan import parse
from .images import check_images, check_source_images
from .inputs import CheckInputs
from .links import check_links
from .markers import check_markers
from .message import check_message
from .signature import check_signature
from .spam import SpamAssassin, SpamResult, check_spam

Scorer = Callable[[bytes], SpamResult]
DEFAULT_SPAM: Scorer = SpamAssassin()


def run_checks(inputs: CheckInputs, *, dns: bool = False, resolver=None,
               spam: Scorer | None = DEFAULT_SPAM, catalog: Catalog | None = None,
               today: date | None = None) -> Report:
    """The preflight report for one edition.

    ``dns`` looks up the From domain's records through ``resolver`` (dnspython's by
    default); ``spam`` scores the message (None skips it); ``catalog`` is the email-client
    data (the shipped copy by default); ``today`` dates that data.
    """
    doc = parse(inputs.html)
    settings = inputs.settings
    findings: list[Finding] = [
        *check_size(inputs.html),
        *check_text_part(doc, inputs.text),
        *check_subject(inputs.subject),
        *check_preheader(inputs.preheader, inputs.subject),
        *check_markers(subject=inputs.subject, preheader=inputs.preheader, html=inputs.html,
                       text=inputs.text),
        *check_links(doc, inputs.text, base_url=settings.base_url),
        *check_click_domains(doc, base_url=settings.base_url),
        *check_images(doc),
        *check_source_images(inputs.images),
        *_clients(doc, catalog, today or date.today()),
        *check_message(inputs.message, settings, html_text=doc.text, text=inputs.text),
        *check_signature(inputs.message, settings),
    ]
    if spam is not None:
        findings += check_spam(inputs.message, spam)
    if dns:
        findings += check_domain(settings.from_domain, selector=settings.dkim_selector,
                                 resolver=resolver, public_key=settings.dkim_public_key)
    else:
        findings.append(note("dns.skipped", "Sending domain not checked.",
                             "Run the check with --dns to look up SPF, DKIM, DMARC and MX."))
    return Report.of(findings, inputs.label)


def _clients(doc, catalog: Catalog | None, today: date) -> list[Finding]:
    try:
        catalog = catalog or caniemail.load()
    except CatalogError as exc:
        return [warning("clients.data-missing", f"Email-client support not checked: {exc}",
                        "Reinstall the package, or refresh the caniemail data.")]
    return check_clients(doc, catalog, today=today)
