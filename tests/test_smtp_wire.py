"""SMTP on the wire, without a server: replies parsed from bytes split anywhere, commands that
cannot carry a second command, and which replies mean what."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.providers._smtp_wire import (
    ProtocolError,
    Reply,
    ReplyReader,
    is_throttling,
    mail_command,
    rcpt_command,
)

# Reply text is any printable text, curly quotes and emoji included; each line's text is
# compared without its surrounding white space, as the reader strips it.
reply_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40).map(str.strip)
replies_st = st.lists(
    st.tuples(st.integers(200, 599), st.lists(reply_text, min_size=1, max_size=4)),
    min_size=1, max_size=8)


def wire(replies) -> bytes:
    out = []
    for code, lines in replies:
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out.append(f"{code}{sep}{line}\r\n".encode())
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(replies=replies_st, data=st.data())
def test_replies_come_out_whole_and_in_order_however_the_bytes_are_split(replies, data):
    stream = wire(replies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    reader = ReplyReader()
    got: list[Reply] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += reader.feed(stream[start:end])
    assert got == [Reply(code, "\n".join(lines)) for code, lines in replies]


def test_a_reply_is_held_back_until_its_last_line_arrives():
    reader = ReplyReader()
    assert reader.feed(b"250-mail.test Hello\r\n250-PIPELINING\r\n") == []
    assert reader.feed(b"250 SMTPUTF8\r") == []
    assert reader.feed(b"\n354 go ahead\r\n") == [
        Reply(250, "mail.test Hello\nPIPELINING\nSMTPUTF8"), Reply(354, "go ahead")]


@pytest.mark.parametrize("garbage", [b"HTTP/1.1 400 Bad Request\r\n", b"25 short\r\n",
                                     b"250x no separator\r\n"])
def test_something_that_is_not_smtp_is_a_protocol_error(garbage):
    with pytest.raises(ProtocolError, match="not an SMTP reply"):
        ReplyReader().feed(garbage)


def test_an_endless_reply_is_cut_off():
    reader = ReplyReader()
    with pytest.raises(ProtocolError, match="longer than 64 KiB"):
        for _ in range(100):
            reader.feed(b"x" * 1024)


def test_reply_classes():
    assert Reply(250, "ok").ok and Reply(451, "").transient and Reply(554, "").permanent
    assert not Reply(354, "").ok and str(Reply(550, "5.1.1 no")) == "550 5.1.1 no"


def test_commands():
    assert mail_command("a@example.com", utf8=False) == b"MAIL FROM:<a@example.com>\r\n"
    assert mail_command("jos\u00e9@xn--bcher-kva.example", utf8=True) == \
        "MAIL FROM:<jos\u00e9@xn--bcher-kva.example> SMTPUTF8\r\n".encode()
    assert rcpt_command("jos\u00e9@x.example", utf8=True) == \
        "RCPT TO:<jos\u00e9@x.example>\r\n".encode()
    with pytest.raises(UnicodeEncodeError):
        rcpt_command("jos\u00e9@x.example", utf8=False)


@pytest.mark.parametrize("address", ["a@b.example>\r\nRCPT TO:<c@d.example", "a\n@b.example",
                                     "a\x00@b.example", "a\x0b@b.example", "a\x7f@b.example",
                                     "<a@b.example>"])
def test_an_address_that_could_smuggle_a_command_is_refused(address):
    with pytest.raises(ValueError, match="control character or an angle bracket"):
        rcpt_command(address, utf8=True)
    with pytest.raises(ValueError, match="sender"):
        mail_command(address, utf8=True)


@pytest.mark.parametrize(("code", "text", "throttling"), [
    (421, "4.7.0 Too many connections, try again later", True),
    (421, "4.3.2 Service shutting down", True),
    (421, "mail.test timeout", True),
    (451, "4.7.1 Sending rate exceeded, slow down", True),
    (450, "4.7.1 <a@b>: Recipient address rejected: rate limit", True),
    (454, "4.7.0 Throttling failure: Maximum sending rate exceeded.", True),
    (451, "4.7.1 Greylisted, try again in 300 seconds", False),
    (450, "4.7.1 graylisted", False),
    (451, "4.3.0 Temporary lookup failure", False),
    (452, "4.3.1 Insufficient system storage", False),
    (450, "4.2.1 mailbox busy", False),
    (550, "5.7.1 rate limit", False),
])
def test_which_replies_ask_us_to_slow_down(code, text, throttling):
    assert is_throttling(code, text) is throttling
