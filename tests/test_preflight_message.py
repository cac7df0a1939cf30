"""Header and footer rules on one complete message (parsed with the stdlib, policy.default)."""

from email import policy
from email.message import EmailMessage

import pytest

from newsletter.preflight.findings import Severity
from newsletter.preflight.inputs import Settings
from newsletter.preflight.message import check_message

BASE = "https://bücher.example"
TOKEN = "1.DGpUZtrxD0LGR-5JyE-j7g"
POSTAL = "Bücherstube, Königstraße 5, 50667 Köln"
SETTINGS = Settings(base_url=BASE, from_address="redaktion@bücher.example",
                    postal_address=POSTAL, unsubscribe_mailto="abmelden@bücher.example")
HEADERS = {
    "From": "Bücher “Woche” <redaktion@bücher.example>",
    "To": "José Müller <jose@example.com>",
    "Reply-To": "redaktion@bücher.example",
    "Subject": "José’s “notes” 🎉",
    "Date": "Mon, 16 Nov 2026 08:00:00 +0000",
    "Message-ID": "<2026-W47.1.c6ea0d9443@xn--bcher-kva.example>",
    "List-Id": "Bücher Woche <buecher-woche.xn--bcher-kva.example>",
    "List-Unsubscribe": f"<https://xn--bcher-kva.example/unsubscribe/{TOKEN}>, "
                        f"<mailto:abmelden@xn--bcher-kva.example?subject=unsubscribe%20{TOKEN}>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}
TEXT = f"José’s notes\n\nUnsubscribe: {BASE}/unsubscribe/{TOKEN}\n{POSTAL}\n"
HTML_TEXT = f"José’s notes Unsubscribe {POSTAL}"


def build(*, text=TEXT, html="<p>José’s notes</p>", **changes) -> bytes:
    """A message like the builder's; a header set to None is left out."""
    msg = EmailMessage(policy=policy.SMTPUTF8)
    for name, value in {**HEADERS, **{k.replace("_", "-"): v for k, v in changes.items()}
                        }.items():
        if value is not None:
            msg[name] = value
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def check(message: bytes, settings: Settings = SETTINGS, html_text=HTML_TEXT, text=TEXT):
    return [(f.severity.value, f.code)
            for f in check_message(message, settings, html_text=html_text, text=text)]


def test_a_message_like_the_builders_with_an_idn_sender_passes():
    assert check(build()) == []


def test_missing_required_headers_are_one_error_naming_them():
    found = check_message(build(Date=None, Message_ID=None), SETTINGS, html_text=HTML_TEXT,
                          text=TEXT)
    assert [(f.code, f.message) for f in found] == \
        [("message.header-missing", "The message has no Date, Message-ID header.")]


def test_a_message_without_a_text_part_is_malformed():
    msg = EmailMessage(policy=policy.SMTPUTF8)
    for name, value in HEADERS.items():
        msg[name] = value
    msg.set_content("<p>José</p>", subtype="html")
    assert ("error", "message.structure") in check(msg.as_bytes())


def test_a_header_line_over_998_characters_is_an_error():
    message = build().replace(b"List-Id: ", b"X-Long: " + b"x" * 1000 + b"\r\nList-Id: ", 1)
    assert check(message) == [("error", "message.line-length")]


@pytest.mark.parametrize("sender, code", [
    ("Five Things <newsletter@gmail.com>", "message.from-freemail"),
    ("not an address", "message.from-invalid"),
    ("a@bücher.example, b@bücher.example", "message.from-several"),
])
def test_bad_senders_are_errors(sender, code):
    assert ("error", code) in check(build(From=sender))


def test_an_invalid_reply_to_is_an_error():
    assert check(build(Reply_To="José <no at sign>")) == [("error", "message.reply-to-invalid")]


def test_replies_to_a_noreply_address_are_a_warning_unless_reply_to_is_real():
    noreply = "Bücher <no-reply@bücher.example>"
    assert check(build(From=noreply, Reply_To=None)) == [("warning", "message.noreply")]
    assert check(build(From=noreply, Reply_To="Do-Not-Reply@bücher.example")) == \
        [("warning", "message.noreply")]
    assert check(build(From=noreply, Reply_To="redaktion@bücher.example")) == []


def test_list_unsubscribe_must_exist_with_one_https_address_and_a_token():
    assert check(build(List_Unsubscribe=None)) == [("error", "message.list-unsubscribe-missing")]
    http_only = f"<http://xn--bcher-kva.example/unsubscribe/{TOKEN}>, <mailto:a@b.example>"
    assert check(build(List_Unsubscribe=http_only)) == \
        [("error", "message.list-unsubscribe-https")]
    no_token = "<https://bücher.example/unsubscribe/>, <mailto:a@b.example>"
    assert check(build(List_Unsubscribe=no_token)) == \
        [("error", "message.list-unsubscribe-token")]
    elsewhere = f"<https://other.example/u/{TOKEN}>, <mailto:a@b.example>"
    assert check(build(List_Unsubscribe=elsewhere)) == \
        [("warning", "message.list-unsubscribe-elsewhere")]
    two = f"<https://bücher.example/unsubscribe/{TOKEN}>, <https://bücher.example/u/{TOKEN}>"
    assert ("warning", "message.list-unsubscribe-several") in check(build(List_Unsubscribe=two))


def test_no_mailto_target_is_only_a_note():
    https_only = f"<https://xn--bcher-kva.example/unsubscribe/{TOKEN}>"
    assert check(build(List_Unsubscribe=https_only)) == [("note", "message.no-mailto")]


@pytest.mark.parametrize("value", [None, "List-Unsubscribe=Yes", "One-Click"])
def test_one_click_post_must_say_exactly_one_click(value):
    assert check(build(List_Unsubscribe_Post=value)) == [("error", "message.one-click")]


@pytest.mark.parametrize("value", [None, "Bücher Woche", "<no-dot>"])
def test_list_id_missing_or_malformed_is_a_warning(value):
    assert check(build(List_Id=value)) == [("warning", "message.list-id")]


def test_the_postal_address_must_be_configured_and_shown():
    no_postal = Settings(base_url=BASE, from_address="redaktion@bücher.example")
    assert check(build(), no_postal) == [("error", "message.postal-missing")]
    assert check(build(), html_text="José’s notes") == [("error", "message.postal-not-shown")]
    assert check(build(), text="José’s notes\n") == [("warning", "message.postal-not-in-text")]
    spaced = "  bücherstube,  königstraße 5,\n 50667 köln "
    assert check(build(), html_text=spaced, text=spaced) == []


def test_findings_name_the_severity():
    [finding] = check_message(build(List_Unsubscribe=None), SETTINGS, html_text=HTML_TEXT,
                              text=TEXT)
    assert finding.severity is Severity.ERROR
    assert "RFC 8058" in finding.fix
