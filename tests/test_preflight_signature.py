"""The sample message's DKIM signature: asked for over SMTP only, covering what RFC 8058 and
RFC 6376 require, with a domain that aligns with From (an IDN From included)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from newsletter.preflight.inputs import Settings
from newsletter.preflight.signature import aligned, check_signature, parse_tags

SMTP = Settings(from_address="redaktion@bücher.example", provider="smtp")
FULL = ("from:reply-to:to:subject:date:message-id:mime-version:content-type:list-id:"
        "list-unsubscribe:list-unsubscribe-post:from")
FOLD = ":\r\n "  # h= folded after a colon, as the signer does
BODY = "\r\n".join([
    "From: =?utf-8?q?B=C3=BCcher?= <redaktion@xn--bcher-kva.example>",
    "To: =?utf-8?q?Jos=C3=A9?= <jose@example.com>",
    "Subject: =?utf-8?q?Jos=C3=A9=E2=80=99s_notes_=F0=9F=8E=89?=",
    "", "Hello",
]).encode()


def signed(h: str = FULL, d: str = "xn--bcher-kva.example", a: str = "rsa-sha256") -> bytes:
    folded = h.replace(":list-id", FOLD + "list-id")
    field = (f"DKIM-Signature: v=1; a={a}; c=relaxed/relaxed; d={d}; s=nl2026;\r\n"
             f" t=1700000000; h={folded};\r\n"
             " bh=AAAA; b=BBBB\r\n CCCC\r\n")
    return field.encode() + BODY


def codes(message: bytes, settings: Settings = SMTP):
    return [(f.severity.value, f.code) for f in check_signature(message, settings)]


def test_a_complete_aligned_signature_is_a_note_saying_what_it_covers():
    found = check_signature(signed(), SMTP)
    assert [f.code for f in found] == ["message.dkim-signed"]
    assert "xn--bcher-kva.example (selector nl2026)" in found[0].message


def test_an_unsigned_smtp_message_is_a_warning_and_an_api_providers_is_fine():
    assert codes(BODY) == [("warning", "message.dkim-unsigned")]
    assert codes(BODY, replace(SMTP, provider="postmark")) == []


@pytest.mark.parametrize("left_out, code", [
    ("list-unsubscribe-post", ("error", "message.dkim-coverage")),
    ("list-unsubscribe", ("error", "message.dkim-coverage")),
    ("message-id", ("warning", "message.dkim-coverage-loose")),
])
def test_what_the_signature_leaves_out_is_named(left_out, code):
    names = [n for n in FULL.split(":") if n != left_out]
    found = check_signature(signed(h=":".join(names)), SMTP)
    assert [(f.severity.value, f.code) for f in found] == [code]
    assert left_out in found[0].message


def test_a_signing_domain_that_does_not_align_with_from_is_a_warning():
    assert codes(signed(d="mail.bücher.example".encode("idna").decode())) == \
        [("note", "message.dkim-signed")]  # a subdomain aligns (relaxed)
    assert codes(signed(d="relay.example.net")) == [("warning", "message.dkim-unaligned")]


def test_sha1_is_refused():
    assert ("error", "message.dkim-sha1") in codes(signed(a="rsa-sha1"))


def test_tags_are_read_across_folded_lines():
    tags = parse_tags("v=1; h=from:to:\r\n subject; b=AB\r\n CD")
    assert tags == {"v": "1", "h": "from:to:subject", "b": "ABCD"}
    assert aligned("news.example.com", "example.com") and not aligned("", "example.com")
