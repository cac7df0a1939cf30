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
from newsletter.edition.placeholders import FieldTemplate
from newsletter.edition.render import render_week
from newsletter.errors import HeaderError
from newsletter.message.mime import _EncodedBody
from newsletter.message.outgoing import prepare

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
    assert msg["Subject"] == "Five Things | Small Teams’ Long Memories"
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
    assert a["Subject"] == "[TEST] Five Things | Small Teams’ Long Memories"
    assert a["Message-ID"] != b["Message-ID"]


# --------------------------------------------------------------------------- any text, any header

# Printable text of every kind: curly quotes, accents, dashes, CJK, emoji, and the characters
# RFC 2047 and RFC 5322 treat specially ("=?", quotes, backslashes, runs of spaces).
printable = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=300
).filter(lambda s: s.strip() == s and s)
tricky = st.sampled_from([
    "Scale Isn\u2019t Enough", "Jos\u00e9 Mart\u00ed", "\u201cQuoted\u201d \u2014 dash",
    "\u65e5\u672c\u8a9e\u306e\u4ef6\u540d", "Launch \U0001f680\U0001f389 day", "=?utf-8?q?x?=",
    'A "quoted" \\ name', "two  spaces", "x" * 200, "\u00e9" * 120, "a, b; c: <d> (e) @f",
])
header_text = printable | tricky


def build_with(subject: str, sender_name: str, to_name: str, **sender) -> bytes:
    from newsletter.message.mime import MessageBuilder
    from newsletter.message.model import Personalized, Sender

    template = FieldTemplate(literals=("Hi\n",), fields=())
    builder = MessageBuilder(
        Sender(sender.get("address", "editors@example.com"), sender_name,
               sender.get("reply_to", "")),
        subject, template, template)
    person = Personalized(recipient=ADA, email="ada@example.com", name=to_name, values={},
                          html_values={}, headers={"List-Id": f"{sender_name} <l.example.com>"},
                          message_id="<1@example.com>")
    return builder.build(person)


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


def rfc2047_phrase(header: str) -> str:
    """The display name of a one-mailbox header, decoded by RFC 2047's rules (white space
    between adjacent encoded words dropped), with the legacy API that implements them."""
    from email.header import decode_header, make_header

    value = header.split(":", 1)[1].replace("\r\n", "")
    phrase = value.rpartition(" <")[0].strip()
    if phrase.startswith('"'):
        return re.sub(r"\\(.)", r"\1", phrase[1:-1])
    return str(make_header(decode_header(phrase)))


def shown(name: str) -> str:
    """A display name as every client shows it: spaces normalized."""
    return re.sub(" {2,}", " ", name.strip(" "))


@settings(max_examples=400, deadline=None)
@given(subject=header_text, sender_name=header_text, to_name=header_text)
def test_any_text_in_any_header_round_trips_exactly(subject, sender_name, to_name):
    data = build_with(subject, sender_name, to_name)
    head = header_block(data)
    assert head.isascii()
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    msg = parse(data)
    assert not msg.defects
    assert str(msg["Subject"]) == subject
    assert msg["From"].addresses[0].addr_spec == "editors@example.com"
    assert msg["To"].addresses[0].addr_spec == "ada@example.com"
    assert str(msg["List-Id"]).endswith("<l.example.com>")
    fields = {line.split(":", 1)[0]: line for line in
              re.split(r"\r\n(?![ \t])", head.decode("ascii"))}
    assert sorted(fields) == sorted(["From", "Subject", "MIME-Version", "Content-Type", "Date",
                                     "To", "Message-ID", "List-Id"])
    for header, name in (("From", sender_name), ("To", to_name)):
        assert rfc2047_phrase(fields[header]) == shown(name)
        # Python's address parser adds a space between adjacent encoded words (CPython
        # gh-128110): exact only where the name's encoded runs fit one word each.
        if not re.search(r"\?=\s+=\?", fields[header]):
            assert msg[header].addresses[0].display_name == shown(name)


def test_a_non_ascii_subject_is_encoded_and_decodes(project):
    path = project / "items" / WEEK / "edition.md"
    path.write_text(path.read_text().replace("headline: Small Teams’ Long Memories",
                                             "headline: Scale Isn\u2019t Enough"))
    config = load_config(project / "newsletter.toml", environ={})
    data = Builder(prepare(config, render_week(config, WEEK))).build(ADA)
    assert b"=?utf-8?q?" in header_block(data)
    assert parse(data)["Subject"] == "Five Things | Scale Isn\u2019t Enough"


def test_non_ascii_sender_and_list_names_and_an_idn_sender(project):
    environ = {"NEWSLETTER_NAME": "Caf\u00e9 \u201cNotes\u201d",
               "NEWSLETTER_FROM_NAME": "Jos\u00e9 \u2014 the editor",
               "NEWSLETTER_FROM_ADDRESS": "jose@stra\u00dfe.example",
               "NEWSLETTER_REPLY_TO": "jose@stra\u00dfe.example",
               "NEWSLETTER_UNSUBSCRIBE_MAILTO": "out@stra\u00dfe.example"}
    config = load_config(project / "newsletter.toml", environ=environ)
    msg = parse(Builder(prepare(config, render_week(config, WEEK))).build(ADA))
    (sender,) = msg["From"].addresses
    assert sender.display_name == "Jos\u00e9 \u2014 the editor"
    # IDNA 2008 keeps the sharp s: xn--strae-oqa, never "strasse", someone else's domain.
    assert sender.addr_spec == "jose@xn--strae-oqa.example"
    assert msg["Reply-To"].addresses[0].addr_spec == "jose@xn--strae-oqa.example"
    assert msg["Subject"] == "Caf\u00e9 \u201cNotes\u201d | Small Teams’ Long Memories"
    assert msg["List-Id"] == "Caf\u00e9 \u201cNotes\u201d <cafe-notes.xn--strae-oqa.example>"
    assert msg["Message-ID"].endswith("@xn--strae-oqa.example>")
    assert "mailto:out@xn--strae-oqa.example?" in str(msg["List-Unsubscribe"])


@pytest.mark.parametrize("sep", ["\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029", "\x00",
                                 "\r", "\n", "\t"])
def test_no_control_character_in_a_name_reaches_a_header(builder, sep):
    name = f"Evil{sep}Reply-To: attacker@evil.example{sep}X"
    with pytest.raises(HeaderError, match="subscriber 3"):
        builder.build(Recipient(id=3, email="eve@example.com", name=name))


@pytest.mark.parametrize("field", ["subject", "sender_name"])
@pytest.mark.parametrize("sep", ["\x0b", "\u2028", "\r\n"])
def test_no_control_character_in_the_subject_or_sender_reaches_a_header(field, sep):
    values = {"subject": "Fine", "sender_name": "Fine", "to_name": "Fine"}
    values[field] = f"Hello{sep}Bcc: victim@example.com"
    with pytest.raises(HeaderError):
        build_with(**values)


@pytest.mark.parametrize("email",
                         ["jos\u00e9@example.com", "x@\u2603.example", "x\u000b@a.example"])
def test_a_stored_address_no_message_can_carry_is_refused_naming_the_subscriber(builder, email):
    with pytest.raises(HeaderError, match=r"subscriber 8: .*subscribers check"):
        builder.build(Recipient(id=8, email=email, name="X"))


def test_a_stored_sharp_s_domain_is_sent_to_its_own_idna_2008_form(builder):
    msg = parse(builder.build(Recipient(id=4, email="jose@stra\u00dfe.de")))
    assert msg["To"].addresses[0].addr_spec == "jose@xn--strae-oqa.de"


@settings(max_examples=200, deadline=None)
@given(name=header_text)
def test_a_phrase_for_providers_is_ascii_and_decodes_to_the_name(name):
    from email.header import decode_header, make_header

    from newsletter.message.headers import phrase

    encoded = phrase(name)
    assert encoded.isascii() and "\r" not in encoded and "\n" not in encoded
    assert str(make_header(decode_header(encoded))) == shown(name)
