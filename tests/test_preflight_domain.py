"""The sending domain's DNS records, looked up through a stub resolver (no network).

The stub answers with dnspython's own rdata, parsed from zone-file text, and raises
dnspython's exceptions, so the rules see exactly what a real lookup returns.
"""

import dns.exception
import dns.rdata
import dns.resolver
import pytest

from newsletter.preflight.domain import check_domain

DOMAIN = "bücher.example"
ACE = "xn--bcher-kva.example"


class StubResolver:
    def __init__(self, zone: dict[tuple[str, str], list[str]], fail: set[str] = frozenset()):
        self.zone, self.fail, self.asked = zone, fail, []

    def resolve(self, name: str, rdtype: str):
        self.asked.append((name, rdtype))
        if name in self.fail:
            raise dns.exception.Timeout()
        if (name, rdtype) in self.zone:
            return [dns.rdata.from_text("IN", rdtype, text) for text in self.zone[(name, rdtype)]]
        if any(n == name for n, _ in self.zone):
            raise dns.resolver.NoAnswer()
        raise dns.resolver.NXDOMAIN()


def zone(changes=None):
    """A well set-up zone for DOMAIN; ``changes`` replaces (or, with None, drops) records."""
    records = {
        (ACE, "TXT"): ['"v=spf1 include:_spf.mail.example " "-all"', '"site-verification=x"'],
        (f"s1._domainkey.{ACE}", "TXT"): ['"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEB"'],
        (f"_dmarc.{ACE}", "TXT"): ['"v=DMARC1; p=quarantine; rua=mailto:d@bücher.example"'],
        (ACE, "MX"): ["10 mx1.mail.example."],
    }
    for key, value in (changes or {}).items():
        if value is None:
            records.pop(key, None)
        else:
            records[key] = value
    return records


def run(records, selector="s1", fail=frozenset()):
    resolver = StubResolver(records, fail)
    return check_domain(DOMAIN, selector=selector, resolver=resolver), resolver


def codes(findings):
    return [(f.severity.value, f.code) for f in findings]


def test_a_well_set_up_idn_domain_passes_with_one_note_naming_what_was_found():
    findings, resolver = run(zone())
    assert [f.message for f in findings] == \
        ["bücher.example: SPF, DKIM (s1), DMARC (p=quarantine), MX."]
    assert (ACE, "TXT") in resolver.asked  # queried in its ASCII (IDNA) form


def test_no_spf_record_is_an_error_citing_gmail_and_yahoo():
    findings, _ = run(zone({(ACE, "TXT"): ['"site-verification=x"']}))
    assert codes(findings)[0] == ("error", "dns.spf-missing")
    assert "Gmail and Yahoo" in findings[0].fix


@pytest.mark.parametrize("records, code", [
    (['"v=spf1 -all"', '"v=spf1 include:x.example ~all"'], "dns.spf-several"),
    (['"v=spf1 +all"'], "dns.spf-open"),
    (['"v=spf1 all"'], "dns.spf-open"),
])
def test_broken_spf_records_are_errors(records, code):
    findings, _ = run(zone({(ACE, "TXT"): records}))
    assert codes(findings)[0] == ("error", code)


def test_dkim_without_a_selector_is_a_note_and_is_not_looked_up():
    findings, resolver = run(zone(), selector="")
    assert ("note", "dns.dkim-unknown") in codes(findings)
    assert not any("_domainkey" in name for name, _ in resolver.asked)


def test_a_missing_or_revoked_dkim_key_is_an_error():
    findings, _ = run(zone(), selector="s2")
    assert codes(findings)[0] == ("error", "dns.dkim-missing")
    assert "s2._domainkey.xn--bcher-kva.example" in findings[0].message
    findings, _ = run(zone({(f"s1._domainkey.{ACE}", "TXT"): ['"v=DKIM1; p="']}))
    assert codes(findings)[0] == ("error", "dns.dkim-revoked")


def test_no_dmarc_record_is_an_error():
    findings, _ = run(zone({(f"_dmarc.{ACE}", "TXT"): None}))
    assert codes(findings)[0] == ("error", "dns.dmarc-missing")
    assert "_dmarc.xn--bcher-kva.example" in findings[0].fix


def test_dmarc_without_a_policy_is_an_error_and_p_none_is_reported():
    findings, _ = run(zone({(f"_dmarc.{ACE}", "TXT"): ['"v=DMARC1; rua=mailto:d@x.example"']}))
    assert codes(findings)[0] == ("error", "dns.dmarc-invalid")
    findings, _ = run(zone({(f"_dmarc.{ACE}", "TXT"): ['"v=DMARC1; p=none"']}))
    assert "DMARC (p=none)" in findings[-1].message


def test_a_subdomain_falls_back_to_the_parent_dmarc_record_and_its_sp_policy():
    records = {
        ("news.example.org", "TXT"): ['"v=spf1 -all"'],
        ("news.example.org", "MX"): ["10 mx.example.org."],
        ("_dmarc.example.org", "TXT"): ['"v=DMARC1; p=reject; sp=quarantine"'],
    }
    findings = check_domain("news.example.org", resolver=StubResolver(records))
    assert findings[-1].message == "news.example.org: SPF, DMARC (p=quarantine), MX."


def test_mx_missing_null_or_the_domain_missing():
    findings, _ = run(zone({(ACE, "MX"): None}))
    assert ("warning", "dns.mx-missing") in codes(findings)
    findings, _ = run(zone({(ACE, "MX"): ["0 ."]}))
    assert ("warning", "dns.mx-null") in codes(findings)
    findings = check_domain("gibt-es-nicht.example", resolver=StubResolver({}))
    assert ("error", "dns.domain-missing") in codes(findings)


def test_a_lookup_that_times_out_is_a_warning_not_a_verdict():
    findings, _ = run(zone(), fail={f"_dmarc.{ACE}"})
    assert ("warning", "dns.lookup-failed") in codes(findings)
    assert ("error", "dns.dmarc-missing") not in codes(findings)


def test_no_from_address_is_an_error():
    assert codes(check_domain("", resolver=StubResolver({}))) == [("error", "dns.no-domain")]


def test_the_published_dkim_key_must_be_the_signing_key():
    ours = "MIGfMA0GCSqGSIb3DQEB"
    resolver = StubResolver(zone())
    found = check_domain(DOMAIN, selector="s1", resolver=resolver, public_key=ours)
    assert codes(found) == [("note", "dns.found")]
    # Long keys come split into several strings; the pieces are joined before comparing.
    split = zone({(f"s1._domainkey.{ACE}", "TXT"): ['"v=DKIM1; k=rsa; p=MIGfMA0G" "CSqGSIb3DQEB"']})
    assert codes(check_domain(DOMAIN, selector="s1", resolver=StubResolver(split),
                              public_key=ours)) == [("note", "dns.found")]
    found = check_domain(DOMAIN, selector="s1", resolver=StubResolver(zone()),
                         public_key="MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")
    assert codes(found)[0] == ("error", "dns.dkim-mismatch")
    assert "s1._domainkey.xn--bcher-kva.example" in found[0].message
