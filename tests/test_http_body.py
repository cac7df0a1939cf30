"""A batch's JSON body as the HTTP providers write it: in a few large pieces that join to
exactly the array of its messages, whatever they contain."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from newsletter.providers._http import PIECE_BYTES, _array_pieces

messages = st.lists(st.fixed_dictionaries({
    "To": st.text(), "Subject": st.text(), "HtmlBody": st.text(max_size=3000)}), max_size=30)


@given(messages)
def test_the_pieces_join_to_exactly_the_array(items):
    assert json.loads(b"".join(_array_pieces(items))) == items


def test_a_batch_of_full_messages_is_written_in_a_few_pieces_not_two_per_message():
    items = [{"HtmlBody": "Scale Isn’t Enough — " * 1500, "To": f"zoë{i}@bücher.example"}
             for i in range(500)]  # ~16 MB, as a batch of 500 real messages
    pieces = _array_pieces(items)
    assert json.loads(b"".join(pieces)) == items
    assert len(pieces) <= len(b"".join(pieces)) // PIECE_BYTES + 1 < 100
    assert all(len(p) >= PIECE_BYTES for p in pieces[:-1])
