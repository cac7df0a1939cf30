"""Delivery status notifications, ARF complaints and mailto unsubscribes, from real-shaped mail."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.audience.tokens import read_token
from newsletter.feedback import ids
from newsletter.feedback.arf import parse_arf
from newsletter.feedback.classify import MailKind, classify
from newsletter.feedback.dsn import parse_dsn
from newsletter.feedback.events import EventKind, ReportError
from newsletter.feedback.mailto import parse_unsubscribe

DATA = Path(__file__).parent / "data" / "feedback"
RECEIVED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
JOSE_TOKEN = "16.sk3rib8cnCNbldYlHS_ipg"  # make_token("test-secret", "unsubscribe", 42)


def mail(name: str, *, crlf=False) -> bytes:
    data = (DATA / name).read_bytes()
    return data.replace(b"\n", b"\r\n") if crlf else data


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_postfix_hard_bounce(crlf):
    [event] = parse_dsn(mail("postfix-bounce.eml", crlf=crlf), received_at=RECEIVED)
    assert event.kind == EventKind.BOUNCED
    assert event.recipient == "jose@xn--bcher-kva.example"  # as the MTA reported it
    assert event.code == "5.1.1"
    assert event.reason == ("550 5.1.1 <jose@xn--bcher-kva.example>: Recipient address rejected: "
                            "User unknown in virtual mailbox table")
    assert event.message_id == "<2026-W47.42.0123456789@news.example.org>"
    assert ids.parse_message_id(event.message_id) == ids.MessageRef(
        "2026-W47", 42, "news.example.org", "0123456789")
    assert event.metadata == {"unsubscribe_token": JOSE_TOKEN}
    assert read_token("test-secret", "unsubscribe", event.metadata["unsubscribe_token"]) == 42
    assert event.occurred_at == datetime(2026, 11, 23, 8, 1, 7, tzinfo=UTC)  # the report's Date
    assert event.provider == "mailbox"
    assert "Undelivered Message Headers" in event.raw


def test_postfix_delay_is_deferred_and_keeps_the_original_recipient():
    [event] = parse_dsn(mail("postfix-delayed.eml"))
    assert event.kind == EventKind.DEFERRED
    assert event.recipient == "Maria@Example.com"  # Original-Recipient, as we sent it
    assert event.code == "4.2.2"
    assert event.reason == "452 4.2.2 Mailbox full"


def test_exim_bounce_with_two_recipients_and_the_whole_message_returned():
    events = parse_dsn(mail("exim-bounce.eml"))
    assert [(e.recipient, e.kind, e.code) for e in events] == [
        ("ana@example.net", EventKind.BOUNCED, "5.1.1"),
        ("lucía@example.net", EventKind.BOUNCED, "5.2.2"),  # 5.x.x: permanent, even "over quota"
    ]
    assert len({e.event_id for e in events}) == 2
    assert {e.message_id for e in events} == {"<2026-W47.1234567.0123456789@news.example.org>"}
    assert events[0].metadata == {"unsubscribe_token": "qglj.zjMVNhnuhEQ4UUhFs7UHUg"}


def test_gmail_bounce():
    [event] = parse_dsn(mail("gmail-bounce.eml"))
    assert event.kind == EventKind.BOUNCED
    assert event.recipient == "nobody.here.2026@gmail.com"
    assert event.reason.startswith("550-5.1.1 The email account that you tried to reach does not "
                                   "exist.")
    assert "\n" not in event.reason
    assert event.occurred_at == datetime(2026, 11, 23, 8, 3, 12, tzinfo=UTC)  # Last-Attempt-Date
    assert event.message_id == "<2026-W47.9.0123456789@news.example.org>"


def test_smtputf8_report_with_global_delivery_status():
    [event] = parse_dsn(mail("smtputf8-bounce.eml"))
    assert event.kind == EventKind.BOUNCED
    assert event.recipient == "josé@bücher.example"  # \x{E9} and \x{FC} decoded
    assert event.reason == "550 5.1.1 <josé@bücher.example>: Benutzer „unbekannt“"
    assert event.message_id == "<2026-W47.43.0123456789@news.example.org>"
    assert event.metadata == {"unsubscribe_token": "17.AAAAAAAAAAAAAAAAAAAAAA"}


def test_the_same_report_read_twice_gives_the_same_ids():
    first = [e.event_id for e in parse_dsn(mail("exim-bounce.eml"))]
    assert first == [e.event_id for e in parse_dsn(mail("exim-bounce.eml"))]
    assert first != [e.event_id for e in parse_dsn(mail("exim-bounce.eml") + b"\n")]


@pytest.mark.parametrize(("status", "action", "kind"), [
    ("5.0.0", "failed", EventKind.BOUNCED),
    ("4.4.7", "failed", EventKind.DEFERRED),  # expired in the queue after transient errors
    ("2.0.0", "delivered", EventKind.DELIVERED),
    ("", "delayed", EventKind.DEFERRED),
    ("", "relayed", EventKind.DELIVERED),
    ("x", "weird", EventKind.UNKNOWN),
])
def test_status_class_decides_and_action_is_the_fallback(status, action, kind):
    data = mail("postfix-delayed.eml").replace(b"Status: 4.2.2", f"Status: {status}".encode()) \
        .replace(b"Action: delayed", f"Action: {action}".encode())
    [event] = parse_dsn(data)
    assert event.kind == kind


def test_a_report_without_recipients_is_a_report_error():
    data = mail("postfix-bounce.eml")
    start = data.index(b"Final-Recipient")
    broken = data[:start] + data[data.index(b"--4Xb2QZ1n3Kz9sWd", start):]
    with pytest.raises(ReportError, match="no recipient"):
        parse_dsn(broken)
    assert classify(broken).kind == MailKind.OTHER
    assert "no recipient" in classify(broken).note


def test_arf_abuse_report():
    [event] = parse_arf(mail("arf-abuse.eml"), received_at=RECEIVED)
    assert event.kind == EventKind.COMPLAINED
    assert event.recipient == "reader@example.net"
    assert event.code == "abuse"
    assert event.reason == "abuse report from SomeGenerator/1.0"
    assert event.message_id == "<2026-W47.46.0123456789@news.example.org>"
    assert event.metadata == {"unsubscribe_token": "1a.BBBBBBBBBBBBBBBBBBBBBB"}
    assert event.occurred_at == datetime(2026, 11, 23, 8, 0, 5, tzinfo=UTC)


def test_arf_with_the_recipient_redacted_still_leads_back_through_the_token():
    [event] = parse_arf(mail("arf-redacted.eml"))
    assert event.kind == EventKind.COMPLAINED
    assert event.recipient == ""
    assert event.metadata == {"unsubscribe_token": JOSE_TOKEN}  # from the mailto target
    assert event.message_id == "<2026-W47.42.0123456789@news.example.org>"
    assert event.occurred_at == datetime(2026, 11, 23, 13, 0, 9, tzinfo=UTC)


@pytest.mark.parametrize(("feedback", "kind"), [
    ("fraud", EventKind.COMPLAINED), ("not-spam", EventKind.UNKNOWN),
    ("virus", EventKind.UNKNOWN), ("auth-failure", EventKind.UNKNOWN),
])
def test_only_abuse_and_fraud_are_complaints(feedback, kind):
    data = mail("arf-abuse.eml").replace(b"Feedback-Type: abuse", f"Feedback-Type: {feedback}"
                                         .encode())
    [event] = parse_arf(data)
    assert event.kind == kind


def test_mailto_unsubscribe_request():
    [event] = parse_unsubscribe(mail("mailto-unsubscribe.eml"), received_at=RECEIVED)
    assert event.kind == EventKind.UNSUBSCRIBED
    assert event.recipient == "jose@bücher.example"
    assert event.metadata == {"unsubscribe_token": JOSE_TOKEN}
    assert event.occurred_at == RECEIVED  # when it arrived, not what the sender's Date says


def test_a_reply_with_prefixes_and_encoded_words_still_yields_the_token():
    [event] = parse_unsubscribe(mail("mailto-reply.eml"))
    assert event.metadata == {"unsubscribe_token": "qglj.zjMVNhnuhEQ4UUhFs7UHUg"}
    assert event.recipient == "lucy@example.com"
    assert read_token("test-secret", "unsubscribe", event.metadata["unsubscribe_token"]) == 1234567


@pytest.mark.parametrize(("name", "kind", "count"), [
    ("postfix-bounce.eml", MailKind.DSN, 1),
    ("postfix-delayed.eml", MailKind.DSN, 1),
    ("exim-bounce.eml", MailKind.DSN, 2),
    ("gmail-bounce.eml", MailKind.DSN, 1),
    ("smtputf8-bounce.eml", MailKind.DSN, 1),
    ("arf-abuse.eml", MailKind.ARF, 1),
    ("arf-redacted.eml", MailKind.ARF, 1),
    ("mailto-unsubscribe.eml", MailKind.UNSUBSCRIBE, 1),
    ("mailto-reply.eml", MailKind.UNSUBSCRIBE, 1),
    ("out-of-office.eml", MailKind.OTHER, 0),
])
def test_classify_every_fixture(name, kind, count):
    item = classify(mail(name, crlf=True), received_at=RECEIVED)
    assert item.kind == kind
    assert len(item.events) == count


def test_a_subject_mentioning_unsubscribe_without_a_token_is_not_a_request():
    data = mail("mailto-unsubscribe.eml").replace(JOSE_TOKEN.encode(), b"me please")
    assert parse_unsubscribe(data) == []
    assert classify(data).kind == MailKind.OTHER


def test_a_bounce_quoting_our_unsubscribe_subject_is_still_a_bounce():
    # A DSN's Subject or returned headers may carry "unsubscribe <token>"; structure wins.
    data = mail("postfix-bounce.eml").replace(b"Subject: Undelivered Mail Returned to Sender",
                                              f"Subject: unsubscribe {JOSE_TOKEN}".encode())
    assert classify(data).kind == MailKind.DSN


@pytest.mark.parametrize("value", [
    "<https://x.example/unsubscribe/16.sk3rib8cnCNbldYlHS_ipg>",
    "<mailto:u@x.example?subject=unsubscribe%2016.sk3rib8cnCNbldYlHS_ipg>",
    "<https://x.example/unsubscribe/16.sk3rib8cnCNbldYlHS_ipg>, <mailto:u@x.example?subject=x>",
])
def test_token_in_list_unsubscribe(value):
    assert ids.token_in_list_unsubscribe(value) == JOSE_TOKEN


def test_tokens_of_the_wrong_shape_are_not_taken():
    assert ids.token_in_list_unsubscribe("<https://x/unsubscribe/16.short>") == ""
    assert ids.token_in_subject("unsubscribe 16.sk3rib8cnCNbldYlHS_ipgEXTRA") == ""
    assert ids.parse_message_id("<2026-W47.test.0123456789abcdef@x>") is None
    assert ids.parse_message_id("20180812214658.1.0DF563D0B3597700@example.org") is None
