"""The sending domain's DNS: SPF, DKIM, DMARC and MX of the From domain (dnspython).

Gmail and Yahoo require of bulk senders (about 5,000 messages a day to their users) SPF and
DKIM for the From domain, a DMARC record (``p=none`` at least) that From aligns with, and
one-click unsubscribe; the fixes say so. The resolver is anything with dnspython's
``resolve(name, rdtype)``; tests pass a stub. Without a DMARC record at the From domain the
lookup falls back to its last two labels, a stand-in for the organizational domain.
"""

from __future__ import annotations

import re
from functools import partial

import dns.exception
import dns.name
import dns.resolver

from .findings import Finding, error, note, warning

BULK = ("Gmail and Yahoo require SPF, DKIM and DMARC (From aligned with SPF or DKIM) of bulk "
        "senders.")
_MISSING = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer)
_FAILED = dns.exception.DNSException  # after _MISSING: no server answered, a timeout, ...


class _Lookup:
    def __init__(self, resolver):
        self.resolver = resolver
        self.failures: list[Finding] = []

    def records(self, name: str, rdtype: str) -> list | None:
        """The answer's records: [] when there are none, None when the lookup failed."""
        try:
            return list(self.resolver.resolve(name, rdtype))
        except _MISSING:
            return []
        except _FAILED as exc:
            self.failures.append(warning("dns.lookup-failed",
                                         f"Could not look up {rdtype} {name}: {exc}",
                                         "Check the network and try again."))
            return None

    def txt(self, name: str) -> list[str] | None:
        found = self.records(name, "TXT")
        if found is None:
            return None
        return [b"".join(r.strings).decode("utf-8", "replace") for r in found]


def ascii_domain(domain: str) -> str:
    return dns.name.from_unicode(domain.strip().rstrip(".")).to_text(omit_final_dot=True)


def check_domain(domain: str, *, selector: str = "", resolver=None,
                 public_key: str = "") -> list[Finding]:
    """``public_key``: the p= value of the key the messages are signed with, when known
    (the SMTP path's own key); the published one must be it."""
    if not domain:
        return [error("dns.no-domain", "No From address, so no domain to check.",
                      "Set from_address.")]
    if resolver is None:
        try:
            resolver = dns.resolver.Resolver()
        except _FAILED as exc:
            return [warning("dns.lookup-failed", f"No DNS resolver: {exc}",
                            "Check /etc/resolv.conf.")]
    lookup = _Lookup(resolver)
    name = ascii_domain(domain)
    findings: list[Finding] = []
    good: list[str] = []
    for check in (_spf, partial(_dkim, public_key=public_key), _dmarc, _mx):
        found, ok = check(lookup, name, domain, selector)
        findings += found
        if ok:
            good.append(ok)
    if good:
        findings.append(note("dns.found", f"{domain}: {', '.join(good)}."))
    return findings + lookup.failures


def _spf(lookup: _Lookup, name: str, shown: str, _selector: str):
    txts = lookup.txt(name)
    if txts is None:
        return [], ""
    records = [t for t in txts if re.match(r"v=spf1(\s|$)", t, re.I)]
    if not records:
        return [error("dns.spf-missing", f"{shown} publishes no SPF record.",
                      f"Add the TXT record your provider gives (v=spf1 include:... ~all). "
                      f"{BULK}")], ""
    if len(records) > 1:
        return [error("dns.spf-several", f"{shown} publishes {len(records)} SPF records; "
                      "receivers then treat SPF as failed.", "Merge them into one.")], ""
    if re.search(r"(^|\s)\+?all\b", records[0], re.I):
        return [error("dns.spf-open", f"{shown}'s SPF ends in +all: anyone may send as it.",
                      "End it with ~all or -all.")], ""
    return [], "SPF"


def _dkim(lookup: _Lookup, name: str, shown: str, selector: str, *, public_key: str = ""):
    if not selector:
        return [note("dns.dkim-unknown", "DKIM not checked: no selector known.",
                     "Your provider signs with its own selector; its domain settings show the "
                     "record to publish.")], ""
    at = f"{selector}._domainkey.{name}"
    txts = lookup.txt(at)
    if txts is None:
        return [], ""
    keys = [t for t in txts if re.search(r"(^|;)\s*p=", t)]
    if not keys:
        return [error("dns.dkim-missing", f"No DKIM key at {at}.",
                      f"Publish the DKIM record for selector {selector!r}. {BULK}")], ""
    if re.search(r"(^|;)\s*p=\s*(;|$)", keys[0]):
        return [error("dns.dkim-revoked", f"The DKIM key at {at} is empty (revoked).",
                      "Publish the current key.")], ""
    published = re.search(r"(?:^|;)\s*p=([^;]*)", keys[0])
    if public_key and "".join(published.group(1).split()) != public_key:
        return [error("dns.dkim-mismatch",
                      f"The DKIM key at {at} is not the key in dkim_private_key: receivers "
                      "will find every signature broken.",
                      f"Publish the public half of dkim_private_key at {at} "
                      "(the README's DKIM section shows the command that prints it).")], ""
    return [], f"DKIM ({selector})"


def _dmarc(lookup: _Lookup, name: str, shown: str, _selector: str):
    labels = name.split(".")
    candidates = [name] + ([".".join(labels[-2:])] if len(labels) > 2 else [])
    for candidate in candidates:
        txts = lookup.txt(f"_dmarc.{candidate}")
        if txts is None:
            return [], ""
        records = [t for t in txts if re.match(r"v=DMARC1\s*(;|$)", t, re.I)]
        if records:
            return _dmarc_policy(records, candidate, subdomain=candidate != name)
    return [error("dns.dmarc-missing", f"{shown} publishes no DMARC record.",
                  f"Add TXT _dmarc.{name}: v=DMARC1; p=none; rua=mailto:... {BULK}")], ""


def _dmarc_policy(records: list[str], at: str, *, subdomain: bool):
    if len(records) > 1:
        return [error("dns.dmarc-several", f"_dmarc.{at} has {len(records)} DMARC records.",
                      "Keep one.")], ""
    tags = {}
    for part in records[0].split(";"):
        key, _, value = part.partition("=")
        tags[key.strip().lower()] = value.strip().lower()
    policy = tags.get("sp", tags.get("p")) if subdomain else tags.get("p")
    if policy not in ("none", "quarantine", "reject"):
        return [error("dns.dmarc-invalid", f"The DMARC record at _dmarc.{at} has no valid "
                      f"policy: {records[0]!r}.", "Set p=none, p=quarantine or p=reject.")], ""
    return [], f"DMARC (p={policy})"


def _mx(lookup: _Lookup, name: str, shown: str, _selector: str):
    try:
        found = list(lookup.resolver.resolve(name, "MX"))
    except dns.resolver.NXDOMAIN:
        return [error("dns.domain-missing", f"The domain {shown} does not exist.",
                      "Check from_address.")], ""
    except dns.resolver.NoAnswer:
        found = []
    except _FAILED as exc:
        lookup.failures.append(warning("dns.lookup-failed", f"Could not look up MX {name}: {exc}",
                                       "Check the network and try again."))
        return [], ""
    exchanges = [r.exchange for r in found]
    if not exchanges:
        return [warning("dns.mx-missing", f"{shown} has no MX record: it takes no replies or "
                        "bounces, and some receivers refuse mail from such domains.",
                        "Add an MX record, or send from a domain that receives mail.")], ""
    if exchanges == [dns.name.root]:
        return [warning("dns.mx-null", f"{shown} declares that it receives no mail (null MX).",
                        "Send from a domain that receives mail.")], ""
    return [], "MX"
