"""Rules on the sample message's DKIM signature: is there one where this project must make it,
what does it cover, and does its domain align with From.

Over SMTP the project signs itself (``dkim_selector``, ``dkim_private_key``); the API
providers sign with the keys set up in their dashboards, so a sample built for them carries no
signature and none is asked for. RFC 8058 section 4 requires List-Unsubscribe and
List-Unsubscribe-Post to be covered by a valid DKIM signature, or receivers ignore one-click
unsubscribe; RFC 6376 requires From. DMARC passes on DKIM only when ``d=`` is the From domain
or shares its organizational domain (approximated, as in ``domain``, by the last two labels).
"""

from __future__ import annotations

import email
from email import policy

from .domain import ascii_domain
from .findings import Finding, error, note, warning
from .inputs import Settings

MUST_SIGN = ("from", "list-unsubscribe", "list-unsubscribe-post")
SHOULD_SIGN = ("to", "subject", "date", "message-id", "list-id")


def check_signature(message: bytes, settings: Settings) -> list[Finding]:
    msg = email.message_from_bytes(message, policy=policy.compat32)
    fields = msg.get_all("DKIM-Signature") or []
    if not fields:
        if settings.provider == "smtp":
            return [warning(
                "message.dkim-unsigned", "Messages sent over SMTP are not DKIM-signed.",
                "Set dkim_selector and dkim_private_key (unless the relay signs for you); "
                "Gmail and Yahoo require DKIM of bulk senders, and one-click unsubscribe "
                "counts only under a DKIM signature.")]
        return []
    tags = parse_tags(str(fields[0]))
    covered = {name.strip().lower() for name in tags.get("h", "").split(":") if name.strip()}
    domain, selector = tags.get("d", "").lower(), tags.get("s", "")
    findings = []
    missing = [name for name in MUST_SIGN if name not in covered]
    if missing:
        findings.append(error(
            "message.dkim-coverage", f"The DKIM signature does not cover {', '.join(missing)}.",
            "RFC 8058 needs List-Unsubscribe and List-Unsubscribe-Post signed, RFC 6376 From."))
    loose = [name for name in SHOULD_SIGN if name not in covered]
    if loose:
        findings.append(warning("message.dkim-coverage-loose",
                                f"The DKIM signature does not cover {', '.join(loose)}.",
                                "Sign them, so they cannot be changed on the way."))
    if tags.get("a", "").lower() == "rsa-sha1":
        findings.append(error("message.dkim-sha1", "The DKIM signature uses rsa-sha1, which "
                              "receivers no longer accept (RFC 8301).", "Sign with rsa-sha256."))
    from_domain = _ascii(settings.from_domain)
    if not aligned(domain, from_domain):
        findings.append(warning(
            "message.dkim-unaligned",
            f"The DKIM domain {domain or '(none)'} does not align with the From domain "
            f"{from_domain}: DMARC then cannot pass on DKIM.",
            "Leave dkim_domain unset (it defaults to the From domain), or use a subdomain of "
            "it."))
    if not findings:
        findings.append(note("message.dkim-signed",
                             f"DKIM-signed by {domain} (selector {selector}), covering From, "
                             "To, Subject, Date, Message-ID, List-Id and List-Unsubscribe(-Post)."))
    return findings


def parse_tags(value: str) -> dict[str, str]:
    """A DKIM-Signature's tag=value list (RFC 6376 section 3.2), white space removed."""
    tags = {}
    for part in value.split(";"):
        name, eq, text = part.partition("=")
        if eq:
            tags[name.strip().lower()] = "".join(text.split())
    return tags


def aligned(signing: str, from_domain: str) -> bool:
    """DMARC's relaxed alignment, with the last two labels for the organizational domain."""
    if not signing or not from_domain:
        return False
    return _organizational(signing) == _organizational(from_domain)


def _organizational(domain: str) -> str:
    return ".".join(domain.lower().rstrip(".").split(".")[-2:])


def _ascii(domain: str) -> str:
    try:
        return ascii_domain(domain).lower() if domain else ""
    except ValueError:  # dnspython's and idna's errors are ValueErrors
        return domain.lower()
