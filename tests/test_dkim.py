"""DKIM signing on its own: signatures dkimpy verifies against a stub DNS answer, that break
when a signed field or the body changes; canonicalization identical to dkimpy's; the keys'
configuration, with one-line errors that never show the key."""

from __future__ import annotations

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from dkim.canonicalization import CanonicalizationPolicy
from dkim.util import parse_tag_value
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.audience.recipient import Recipient
from newsletter.errors import ConfigError
from newsletter.providers._dkim import (
    DkimSigner,
    dns_record,
    load_private_key,
    relaxed_body,
    relaxed_headers,
    signer_for,
)
from tests.transport_fixtures import make_config, make_outgoing

RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
SELECTOR = "nl2026"
REQUIRED = {"from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
            "list-unsubscribe-post"}


@pytest.fixture(scope="session")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# A throwaway 768-bit key (cryptography no longer makes keys that small; receivers ignore
# signatures made with one).
WEAK_KEY = """\
-----BEGIN PRIVATE KEY-----
MIIB5QIBADANBgkqhkiG9w0BAQEFAASCAc8wggHLAgEAAmEA0zMZGWAlKe2XkwH9
RSPci2k3K/g+TUriBr1CXEBCAGcUckO1wDnARS8oDaixtDuX1sKkCLgAqN3krhr+
D11vyo8liAmzQMLr3K4UXhmcFEBC3AndM1XrQrDoymAZQzezAgMBAAECYAJHQ9cN
PXllUcRJOjU7vM5YNTspM2rcCvItqoCaRNwCQKs25cgMF3Hnn1P+ZORf3C9zqHlv
C1eEIJ2RhRBKB/X0wJ0KXdyCi2S5AmLoF8KiQDsrU/ce5bIFO/B+jxKXqQIxAPWl
ZKrXXhO2Y4aeNKl/5sIB2ZSUzEtEn4FFF7bClpCd0pGPIm3njopmwwcQxCKTxwIx
ANwaA/M79r9ZbPy2IXStSU9DleSeN2NsOoSK+/W9nVSO7zvLEMl2wcYTH7SlTjFk
tQIxAI6iWM+yelfr4eJ63o1FTRJ9zH8v32gdEpkXK2vdlVunqGsIt68lc2j9vmTN
4XVKZQIxAIBc18LqTLxJ3gr/+UD/ssp8YxXCxBDC1Nnp6InnvLLM7W7UvgSQsu/e
xVXoNlMOJQIwHUIOt61r44jqhKEltOJWsuYjXugo3Vf5DuGHlDSviqx+ZtV1w3sc
t5Gam/FJbdhR
-----END PRIVATE KEY-----
"""


def pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def stub_dns(key, name: str):
    """dkimpy's DNS look-up, answered from memory: the key's record at ``name`` only."""
    record = dns_record(key).encode("ascii")
    asked = []

    def get_txt(queried: bytes, timeout: float = 5):
        asked.append(queried)
        return record if queried == name.encode("ascii") else None

    get_txt.asked = asked
    return get_txt


def tags(signed: bytes) -> dict[bytes, bytes]:
    headers, _ = dkim.rfc822_parse(signed)
    name, value = headers[0]
    assert name == b"DKIM-Signature"
    return parse_tag_value(value)


def sample_message(project, name="José “Pepe” Núñez 🎉", **overrides) -> bytes:
    config = make_config(project, **overrides)
    outgoing = make_outgoing(config)
    person = outgoing.personalize(Recipient(id=7, email="jose@bücher.example", name=name))
    return outgoing.message(person)


def test_a_signed_message_verifies_and_covers_the_list_headers(project, key):
    message = sample_message(project)
    signer = DkimSigner(key, selector=SELECTOR, domain="fivethings.example.com")
    signed = signer.sign(message)

    dns = stub_dns(key, f"{SELECTOR}._domainkey.fivethings.example.com.")
    assert dkim.verify(signed, dnsfunc=dns)
    assert dns.asked == [b"nl2026._domainkey.fivethings.example.com."]
    found = tags(signed)
    assert found[b"a"] == b"rsa-sha256" and found[b"c"] == b"relaxed/relaxed"
    assert found[b"d"] == b"fivethings.example.com" and found[b"s"] == b"nl2026"
    signed_names = {n.strip().decode() for n in found[b"h"].split(b":")}
    assert signed_names >= REQUIRED
    field = signed[:len(signed) - len(message)]
    assert field.endswith(b"\r\n") and max(map(len, field.split(b"\r\n"))) <= 78


@pytest.mark.parametrize("change", [
    (b"Subject: Five Things", b"Subject: Five Thingz"),
    (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
     b"List-Unsubscribe-Post: List-Unsubscribe=Two-Click"),
    (b"unsubscribe/7.", b"unsubscribe/8."),          # the link in List-Unsubscribe and body
    (b"Every week we collect", b"Every week we select"),  # the body only
])
def test_a_changed_field_or_body_no_longer_verifies(project, key, change):
    signed = DkimSigner(key, selector=SELECTOR, domain="fivethings.example.com").sign(
        sample_message(project))
    before, after = change
    assert before in signed
    dns = stub_dns(key, f"{SELECTOR}._domainkey.fivethings.example.com.")
    assert not dkim.verify(signed.replace(before, after, 1), dnsfunc=dns)


def test_a_second_list_unsubscribe_added_on_the_way_breaks_the_signature(project, key):
    signed = DkimSigner(key, selector=SELECTOR, domain="fivethings.example.com").sign(
        sample_message(project))
    forged = signed.replace(b"\r\n\r\n", b"\r\nList-Unsubscribe: <https://evil.example/u>"
                            b"\r\n\r\n", 1)
    dns = stub_dns(key, f"{SELECTOR}._domainkey.fivethings.example.com.")
    assert not dkim.verify(forged, dnsfunc=dns)


def test_refolding_white_space_on_the_way_keeps_it_valid(project, key):
    """relaxed/relaxed: a relay that re-folds a header or trims a line end changes nothing."""
    signed = DkimSigner(key, selector=SELECTOR, domain="fivethings.example.com").sign(
        sample_message(project))
    refolded = signed.replace(b"Subject: Five Things |", b"Subject:  Five Things\r\n\t|", 1)
    assert refolded != signed
    dns = stub_dns(key, f"{SELECTOR}._domainkey.fivethings.example.com.")
    assert dkim.verify(refolded, dnsfunc=dns)


def test_the_signing_domain_defaults_to_the_from_domain_in_ascii(project, key, tmp_path):
    path = tmp_path / "dkim.pem"
    path.write_text(pem(key))
    config = make_config(project, from_address="editors@bücher.example",
                         reply_to="editors@bücher.example",
                         unsubscribe_mailto="unsubscribe@bücher.example",
                         dkim_selector=SELECTOR, dkim_private_key=str(path))
    signer = signer_for(config)
    assert signer.domain == "xn--bcher-kva.example"
    outgoing = make_outgoing(config)
    message = outgoing.message(outgoing.personalize(Recipient(1, "ada@example.com", "Ada")))
    dns = stub_dns(key, f"{SELECTOR}._domainkey.xn--bcher-kva.example.")
    assert dkim.verify(signer.sign(message), dnsfunc=dns)

    other = make_config(project, dkim_selector=SELECTOR, dkim_private_key=str(path),
                        dkim_domain="mail.bücher.example")
    assert signer_for(other).domain == "mail.xn--bcher-kva.example"


def test_the_key_may_be_the_pem_itself_from_the_environment(project, key):
    config = make_config(project, dkim_selector=SELECTOR, dkim_private_key=pem(key) + "\n")
    signer = signer_for(config)
    assert signer.key.private_numbers() == key.private_numbers()
    assert config.redacted()["dkim_private_key"] == "(set)"


def test_without_a_key_nothing_is_signed(project):
    assert signer_for(make_config(project)) is None


@pytest.mark.parametrize("overrides, expected", [
    ({"dkim_selector": SELECTOR}, "config key 'dkim_private_key' must be set too"),
    ({"dkim_private_key": "dkim.pem"}, "config key 'dkim_selector' must be set too"),
    ({"dkim_selector": "bad_selector!", "dkim_private_key": "dkim.pem"},
     "config key 'dkim_selector' must be a DNS name"),
    ({"dkim_selector": SELECTOR, "dkim_private_key": "dkim.pem", "dkim_domain": "a..b"},
     "config key 'dkim_domain'"),
])
def test_incomplete_or_malformed_dkim_settings_are_refused_at_load(project, overrides,
                                                                   expected):
    with pytest.raises(ConfigError, match=expected):
        make_config(project, **overrides)


def test_an_unusable_key_is_one_line_naming_the_key_never_showing_it(project, key, tmp_path):
    small = serialization.load_pem_private_key(WEAK_KEY.encode(), password=None)
    not_rsa = ec.generate_private_key(ec.SECP256R1())
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")).decode()
    cases = {
        str(tmp_path / "missing.pem"): "cannot be read",
        "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----":
            "is not a PEM private key",
        pem(small): "is a 768-bit RSA key",
        pem(not_rsa): "must be an RSA key",
        encrypted: "is encrypted",
    }
    for value, expected in cases.items():
        with pytest.raises(ConfigError) as caught:
            load_private_key(value, tmp_path, "NEWSLETTER_DKIM_PRIVATE_KEY")
        text = str(caught.value)
        assert expected in text and "config key 'dkim_private_key'" in text
        assert "\n" not in text and "NEWSLETTER_DKIM_PRIVATE_KEY" in text
        assert "BEGIN" not in text and "MII" not in text


def test_a_relative_key_path_is_read_beside_the_config(project, key):
    (project / "keys").mkdir()
    (project / "keys" / "dkim.pem").write_text(pem(key))
    config = make_config(project, dkim_selector=SELECTOR, dkim_private_key="keys/dkim.pem")
    assert signer_for(config).key.key_size == 2048


# --- canonicalization: the fast paths equal dkimpy's --------------------------------------

pieces = st.sampled_from([" ", "  ", "   ", "\t", " \t ", "\r\n", "\r\n\r\n", "x", "José",
                          "’", "🎉", "=20", ".", "\n", "\r", "\x0b", "\x00", "\u2028", "<p>"])
bodies = st.lists(st.one_of(pieces, st.text(max_size=5)), max_size=40).map(
    lambda parts: "".join(parts).encode("utf-8"))


@settings(max_examples=400, deadline=None)
@given(body=bodies)
def test_relaxed_body_is_dkimpys(body):
    assert relaxed_body(body) == RELAXED.canonicalize_body(body)


header_values = st.lists(st.one_of(st.sampled_from(
    [" ", "  ", "\t", "\r\n ", "\r\n\t", "x", "José", "=?utf-8?q?Jos=C3=A9?=", "<a@b>", ","]),
    st.text(max_size=4)), max_size=20).map(lambda parts: "".join(parts).encode("utf-8"))


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from([b"Subject", b"LIST-ID", b"To "]), value=header_values)
def test_relaxed_headers_are_dkimpys(name, value):
    headers = [(name, value + b"\r\n")]
    assert relaxed_headers(headers) == RELAXED.canonicalize_headers(headers)
