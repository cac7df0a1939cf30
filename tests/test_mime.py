"""Per-recipient messages: headers, structure and the quoted-printable splice."""

import binascii
import email
import re
from email import policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.audience.recipient import Recipient
from newsletter.audience.tokens import read_token
from newsletter.config import load_config
from newsletter.delivery.mime import _EncodedBody
from newsletter.delivery.outgoing import prepare
from newsletter.edition.placeholders import FieldTemplate
from newsletter.edition.render import render_week
from newsletter.errors import HeaderError

WEEK = "2026-W47"
ADA = Recipient(id=1, email="ada@example.com", name="Ada Lovelace")


@pytest.fixture
def config(project):
    return load_config(project / "newsletter.toml", environ={"NEWSLETTER_SECRET_KEY": "k" * 32})


class Builder:
    """Recipient -> message bytes, the way every send makes them."""

    def __init__(self, outgoing):
        self.outgoing = outgoing

    def build(self, recipient: Recipient) -> bytes:
        return self.outgoing.message(self.outgoing.personalize(recipient))


@pytest.fixture
def builder(config):
    return Builder(prepare(config, render_week(config, WEEK)))


def parse(data: bytes):
    return email.message_from_bytes(data, policy=policy.default)


text_st = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=300
)


@settings(max_examples=300, deadline=None)
@given(literals=st.lists(text_st, min_size=1, max_size=5), data=st.data())
def test_quoted_printable_splice_decodes_to_the_filled_text(literals, data):
    fields = tuple(f"f{i}" for i in range(len(literals) - 1))
    template = FieldTemplate(literals=tuple(literals), fields=fields)
    values = {f: data.draw(text_st) for f in fields}
    encoded = b"".join(_EncodedBody(template).encode(values))
    lines = encoded.split(b"\r\n")
    assert all(len(line) <= 76 for line in lines)
    assert b"\n" not in encoded.replace(b"\r\n", b"")
    decoded = binascii.a2b_qp(encoded).decode("utf-8").replace("\r\n", "\n")
    assert decoded == template.fill(values)


def test_a_message_parses_cleanly_with_every_required_header(builder):
    msg = parse(builder.build(ADA))
    assert not msg.defects and not any(part.defects for part in msg.walk())
    assert msg["From"] == "Five Things <editors@fivethings.example.com>"
    assert msg["To"] == "Ada Lovelace <ada@example.com>"
    assert msg["Subject"] == "Five Things | Small Teams, Long Memories"
    assert msg["Reply-To"] == "editors@fivethings.example.com"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"].datetime.tzinfo is not None
    assert re.fullmatch(r"<2026-W47\.1\.[0-9a-f]{10}@fivethings\.example\.com>", msg["Message-ID"])
    assert msg["List-Id"] == "Five Things <five-things.fivethings.example.com>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = [t.strip() for t in str(msg["List-Unsubscribe"]).split(",")]
    assert re.fullmatch(r"<https://fivethings\.example\.com/unsubscribe/[\w.-]+>", https)
    assert mailto.startswith("<mailto:unsubscribe@fivethings.example.com?subject=unsubscribe%20")


def test_multipart_alternative_text_then_html_in_utf8(builder):
    msg = parse(builder.build(ADA))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert "Hi Ada," in parts[0].get_content()
    assert "Hi Ada," in parts[1].get_content()
    assert "\u2019" in parts[0].get_content(), "typographic quotes survive the round trip"


def test_every_line_is_within_rfc_5322_limits(builder):
    for line in builder.build(ADA).split(b"\r\n"):
        assert len(line) <= 998
    header = builder.build(ADA).split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in header.replace(b"\r\n", b"")


def test_the_unsubscribe_token_names_the_subscriber(builder):
    msg = parse(builder.build(Recipient(id=77, email="x@example.com")))
    url = re.search(r"<(https://[^>]+)>", str(msg["List-Unsubscribe"])).group(1)
    assert read_token("k" * 32, "unsubscribe", url.rsplit("/", 1)[1]) == 77
    html = msg.get_body(("html",)).get_content()
    assert f'href="{url}"' in html


def test_message_ids_and_tokens_differ_per_recipient(builder):
    a = parse(builder.build(Recipient(id=1, email="a@example.com")))
    b = parse(builder.build(Recipient(id=2, email="b@example.com")))
    assert a["Message-ID"] != b["Message-ID"]
    assert a["List-Unsubscribe"] != b["List-Unsubscribe"]


def test_names_fall_back_and_non_ascii_is_encoded(builder):
    jose = Recipient(id=5, email="jose@b\u00fccher.example", name="Jos\u00e9 Mart\u00ed")
    msg = parse(builder.build(jose))
    raw_to = builder.build(Recipient(id=5, email="jose@b\u00fccher.example", name="Jos\u00e9"))
    assert b"=?utf-8?" in raw_to.split(b"\r\n\r\n")[0]
    assert msg["To"].addresses[0].display_name == "Jos\u00e9 Mart\u00ed"
    assert msg["To"].addresses[0].domain == "xn--bcher-kva.example"
    nameless = parse(builder.build(Recipient(id=6, email="n@example.com")))
    assert nameless["To"] == "n@example.com"
    assert "Hi there," in nameless.get_body(("plain",)).get_content()


def test_recipient_values_are_escaped_in_html_only(builder):
    odd = Recipient(id=9, email="a&b@example.com", name='<Bob> "B"')
    msg = parse(builder.build(odd))
    assert "a&amp;b@example.com" in msg.get_body(("html",)).get_content()
    assert "at a&b@example.com." in msg.get_body(("plain",)).get_content()
    assert msg["To"].addresses[0].display_name == '<Bob> "B"'


@pytest.mark.parametrize("name", ["Eve\r\nBcc: victim@example.com", "Eve\nX"])
def test_a_line_break_in_a_name_cannot_inject_headers(builder, name):
    with pytest.raises(HeaderError, match="name"):
        builder.build(Recipient(id=3, email="eve@example.com", name=name))


def test_without_a_mailto_only_the_https_target_is_listed(project):
    config = load_config(
        project / "newsletter.toml", environ={"NEWSLETTER_UNSUBSCRIBE_MAILTO": ""}
    )
    builder = Builder(prepare(config, render_week(config, WEEK)))
    assert "mailto" not in str(parse(builder.build(ADA))["List-Unsubscribe"])


def test_a_test_send_prefixes_the_subject_and_varies_the_message_id(config):
    rendered = render_week(config, WEEK)
    builder = Builder(prepare(config, rendered, test=True))
    a, b = parse(builder.build(ADA)), parse(builder.build(ADA))
    assert a["Subject"] == "[TEST] Five Things | Small Teams, Long Memories"
    assert a["Message-ID"] != b["Message-ID"]
