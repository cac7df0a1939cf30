"""Rules on links and image sources: https only, nothing local, unsubscribe links with a token.

An unsubscribe link is one that resolves to ``<base_url>/unsubscribe``; the web app needs the
signed token after it (``/unsubscribe/<token>``) to know who is leaving. Gmail and Yahoo also
want a visible unsubscribe link in the body, so one must be there.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urljoin, urlsplit

from .findings import Finding, error, warning
from .htmlscan import Document

_SAFE_SCHEMES = ("mailto", "tel", "cid", "sms")


def check_links(doc: Document, text: str, *, base_url: str) -> list[Finding]:
    urls = [(e.attrs["href"].strip(), e) for e in doc.tags("a", "area") if "href" in e.attrs]
    urls += [(e.attrs["src"].strip(), e) for e in doc.tags("img") if e.attrs.get("src")]
    problems: dict[str, list[str]] = {}
    for url, _ in urls:
        kind = classify(url, base_url)
        if kind:
            problems.setdefault(kind, []).append(url)
    findings = [_finding(kind, found) for kind, found in problems.items()]
    visible = [url for url, e in urls if e.tag == "a" and not e.hidden]
    if not any(unsubscribe_token(url, base_url) for url in visible):
        findings.append(error(
            "links.no-unsubscribe", "The HTML has no visible unsubscribe link with a token.",
            "Link to {{ recipient.unsubscribe_url }} in the footer of edition.mjml.j2; Gmail "
            "and Yahoo require a visible unsubscribe link in the body.",
        ))
    if not any(unsubscribe_token(word.strip("()<>.,"), base_url) for word in text.split()):
        findings.append(warning(
            "links.text-no-unsubscribe", "The text part has no unsubscribe link with a token.",
            "Add {{ recipient.unsubscribe_url }} to edition.txt.j2.",
        ))
    return findings


def classify(url: str, base_url: str) -> str:
    """The problem with one href or src: '', 'local', 'http', 'relative' or 'unsubscribe'."""
    if not url or url.startswith("#"):
        return ""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in _SAFE_SCHEMES or scheme == "data":
        return ""
    if not scheme:
        return "unsubscribe" if unsubscribe_token(url, base_url) == "" else "relative"
    if scheme in ("http", "https") and is_local(parts.hostname or ""):
        return "local"
    if unsubscribe_token(url, base_url) == "":
        return "unsubscribe"
    return "http" if scheme == "http" else ""


def is_local(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host in ("localhost", "") or host.endswith((".localhost", ".local")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or \
        address.is_unspecified


def unsubscribe_token(url: str, base_url: str) -> str | None:
    """The token of an unsubscribe link under ``base_url``: '' when it has none, None when
    ``url`` is no unsubscribe link at all."""
    if not base_url:
        return None
    base = urlsplit(base_url)
    target = urlsplit(urljoin(base_url.rstrip("/") + "/", url))
    if _host(target.hostname) != _host(base.hostname):
        return None
    prefix = base.path.rstrip("/") + "/unsubscribe"
    if not target.path.startswith(prefix):
        return None
    rest = target.path[len(prefix):]
    if rest not in ("", "/") and not rest.startswith("/"):
        return None  # /unsubscribed, /unsubscribe-all: some other page
    token = rest.strip("/").split("/")[0]
    return token or target.query


def _host(host: str | None) -> str:
    host = (host or "").lower().rstrip(".")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


# code, what one does, what several do, the fix
_MESSAGES = {
    "local": ("links.local", "points at", "point at",
              "this machine or a private network, which readers cannot reach",
              "Use the public address (check base_url and the items' urls)."),
    "http": ("links.http", "uses", "use", "plain http://",
             "Use https:// addresses; mail clients and filters flag plain http."),
    "relative": ("links.relative", "is", "are", "relative, which a mail client cannot resolve",
                 "Write full https:// addresses."),
    "unsubscribe": ("links.unsubscribe-no-token", "goes", "go",
                    "to the unsubscribe page without a token",
                    "Link to {{ recipient.unsubscribe_url }}, which carries each reader's "
                    "token, not to <base_url>/unsubscribe."),
}


def _finding(kind: str, found: list[str]) -> Finding:
    code, one, several, what, fix = _MESSAGES[kind]
    if len(found) == 1:
        message = f"1 link or image source {one} {what}: {found[0]}"
    else:
        message = f"{len(found)} links or image sources {several} {what}; the first: {found[0]}"
    make = warning if kind in ("http", "relative") else error
    return make(code, message, fix)
