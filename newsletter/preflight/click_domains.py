"""With ``click_counts`` the items' links go through ``<base_url>/r/<token>``: a warning when
that redirect's registrable domain (``news.example.com`` -> ``example.com``, by the Public
Suffix List) is not the one the links lead to, since some filters score a link whose visible
address or final domain differs from the one it points at. The original URLs are read back
from the tokens in the rendered HTML (without checking signatures: no key is needed)."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from ..audience.addresses import ascii_domain, display_domain
from ..edition.click_links import ROUTE
from ..edition.click_tokens import peek_click_token
from ..errors import HeaderError
from .findings import Finding, warning
from .htmlscan import Document

MAX_SHOWN = 5


def check_click_domains(doc: Document, *, base_url: str) -> list[Finding]:
    if not base_url:
        return []
    prefix = base_url.rstrip("/") + ROUTE
    ours = registrable(urlsplit(base_url).hostname or "")
    others: list[str] = []
    for element in doc.tags("a"):
        href = element.attrs.get("href", "").strip()
        if not href.startswith(prefix):
            continue
        target = peek_click_token(href[len(prefix):].split("?")[0].split("#")[0])
        if target is None:
            continue
        domain = registrable(urlsplit(target.url).hostname or "")
        if domain and domain != ours and domain not in others:
            others.append(domain)
    if not others:
        return []
    shown = ", ".join(_display(d) for d in others[:MAX_SHOWN])
    more = f" and {len(others) - MAX_SHOWN} more" if len(others) > MAX_SHOWN else ""
    return [warning(
        "links.click-domain",
        f"Counted links go through {_display(ours)} to other domains: {shown}{more}.",
        "Some filters score links that redirect to another domain. Serve base_url from the "
        "domain you link to most, or turn click_counts off if deliverability suffers.")]


def registrable(host: str) -> str:
    """``host``'s registrable domain (ASCII, lower case); the host itself when it has none
    (an IP address, ``localhost``)."""
    host = host.lower().rstrip(".")
    try:
        host = ascii_domain(host)
    except HeaderError:
        return host
    return _psl().privatesuffix(host) or host


def _display(domain: str) -> str:
    """An internationalized domain as readers see it (``bücher.example``)."""
    return display_domain(domain)


@lru_cache(maxsize=1)
def _psl():  # the list ships inside the package: nothing is downloaded
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()
