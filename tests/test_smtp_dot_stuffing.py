"""Dot-stuffing done once, by the builder: the stuffed message, un-stuffed as an SMTP server
does (RFC 5321 section 4.5.2), is exactly the message, whatever the edition and the values."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.audience.recipient import Recipient
from newsletter.edition.placeholders import FieldTemplate
from newsletter.message.mime import MessageBuilder
from newsletter.message.model import Personalized, Sender
from tests.transport_fixtures import make_config, make_outgoing

# Lines that start with dots, lone dots, every kind of line break and the characters real
# content has: curly quotes, accents, emoji, VT, NUL, U+2028.
tricky = st.lists(
    st.one_of(st.sampled_from([".", "..", "\n", "\r\n", "\r", "\x0b", "\x00", "\u2028", "’",
                               "“", "”", "José", "🎉", " ", "=", "\t", "x" * 70]),
              st.characters(blacklist_categories=("Cs",))),
    max_size=60).map("".join)


def lines(message: bytes) -> list[bytes]:
    return message.split(b"\r\n")


def unstuff(message: bytes) -> bytes:
    """What the receiving server does: drop the first dot of every line that starts with one."""
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines(message))


def without_date(message: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*\r\n", b"\r\n", message, count=1)


@settings(max_examples=300, deadline=None)
@given(html=st.lists(tricky, min_size=1, max_size=4), text=st.lists(tricky, min_size=1,
                                                                      max_size=4),
       data=st.data())
def test_the_stuffed_message_unstuffed_is_exactly_the_message(html, text, data):
    html_t = FieldTemplate(tuple(html), tuple(f"h{i}" for i in range(len(html) - 1)))
    text_t = FieldTemplate(tuple(text), tuple(f"t{i}" for i in range(len(text) - 1)))
    values = {f: data.draw(tricky) for f in (*html_t.fields, *text_t.fields)}
    builder = MessageBuilder(Sender("editors@example.com", "Editors"), "The edition",
                             html_t, text_t)
    person = Personalized(
        recipient=Recipient(1, "ada@example.com", "Ada"), email="ada@example.com",
        name=data.draw(st.sampled_from(["Ada", ".Ada", "José “Pepe”", ""])),
        values=values, html_values=values,
        headers={"List-Unsubscribe": "<https://example.com/u/1.abc>"},
        message_id="<2026-W47.1.abc@example.com>")

    plain = without_date(builder.build(person))
    stuffed = without_date(builder.build(person, dot_stuffed=True))

    assert unstuff(stuffed) == plain
    # The same as stuffing the finished message line by line, only done piece by piece.
    assert stuffed == b"\r\n".join(b"." + line if line.startswith(b".") else line
                                   for line in lines(plain))
    assert b"." not in lines(stuffed), "no line that would end the DATA early"
    assert stuffed.endswith(b"\r\n")
    assert b"\r" not in stuffed.replace(b"\r\n", b"") and b"\n" not in stuffed.replace(
        b"\r\n", b""), "CRLF lines only: nothing left for a second normalization pass"


def test_a_line_that_starts_with_a_dot_is_stuffed_where_the_value_goes(project):
    config = make_config(project)
    outgoing = make_outgoing(config)
    person = outgoing.personalize(Recipient(1, "dot@example.com", ".Dot"))
    plain = outgoing.message(person)
    stuffed = outgoing.message(person, dot_stuffed=True)
    assert any(line.startswith(b".Dot") for line in lines(plain))
    assert any(line.startswith(b"..Dot") for line in lines(stuffed))
    assert unstuff(without_date(stuffed)) == without_date(plain)
