"""A batch's JSON body as the HTTP providers write it: fragments that share the edition's text,
joined to exactly the array of its messages whatever they contain, written in a few large
pieces, the same bytes on every attempt."""

from __future__ import annotations

import asyncio
import json

from hypothesis import given
from hypothesis import strategies as st

from newsletter.edition.placeholders import FieldTemplate
from newsletter.providers._json_body import (
    PIECE_BYTES,
    Filled,
    array_fragments,
    plain,
    stream,
)

FIELDS = ("recipient.first_name", "recipient.unsubscribe_url")


@st.composite
def filled(draw):
    literals = tuple(draw(st.lists(st.text(), min_size=3, max_size=3)))
    values = draw(st.fixed_dictionaries({f: st.text(max_size=40) for f in FIELDS}))
    return Filled(FieldTemplate(literals=literals, fields=FIELDS), values)


messages = st.lists(st.fixed_dictionaries(
    {"To": st.text(), "HtmlBody": filled()},
    optional={"Subject": st.text(), "TextBody": filled()}), max_size=12)


def written(fragments, piece_bytes=PIECE_BYTES):
    async def collect():
        return [piece async for piece in stream(fragments, piece_bytes)]
    return asyncio.run(collect())


@given(messages)
def test_the_fragments_join_to_exactly_the_array(items):
    body = b"".join(array_fragments(items))
    assert json.loads(body) == [plain(m) for m in items]


@given(st.lists(filled(), max_size=5))
def test_a_message_of_filled_parts_alone_is_still_an_object(parts):
    items = [{"HtmlBody": p} for p in parts]
    assert json.loads(b"".join(array_fragments(items))) == [plain(m) for m in items]


def batch_of_500():
    """A batch as a real send has: 500 messages of ~30 KB sharing one edition."""
    html = FieldTemplate(literals=("<p>Scale Isn’t Enough — “quoted” \\ \n" * 600, "</p><a href=\"",
                                   "\">unsubscribe</a>"), fields=FIELDS)
    return [{"To": f"Zoë {i} <zoë{i}@bücher.example>", "Subject": "Small Teams’ Long Memories",
             "HtmlBody": Filled(html, {FIELDS[0]: f"Zoë {i}",
                                       FIELDS[1]: f"https://news.example/u/{i}"})}
            for i in range(500)]


def test_a_batch_holds_the_edition_once_not_once_per_message():
    fragments = array_fragments(batch_of_500())
    whole = sum(map(len, fragments))
    held = sum(len(f) for f in {id(f): f for f in fragments}.values())
    assert whole > 10_000_000
    assert held < whole / 50


def test_every_attempt_writes_the_same_bytes_in_a_few_large_pieces():
    items = batch_of_500()
    fragments = array_fragments(items)
    first, second = written(fragments), written(fragments)
    assert first == second
    assert json.loads(b"".join(first)) == [plain(m) for m in items]
    assert len(first) <= sum(map(len, first)) // PIECE_BYTES + 1 < 100
    assert all(len(p) >= PIECE_BYTES for p in first[:-1])
