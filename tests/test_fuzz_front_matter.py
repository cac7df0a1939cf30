"""Fuzzing front matter: random text and YAML-shaped hostility between the ``---`` lines. The
invariant: a one-line ContentError naming the file, or fields that are one line of text each,
never a traceback (no ValueError from a date, no RecursionError, no OverflowError)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from newsletter.edition import frontmatter
from newsletter.edition.content import EDITION_FIELDS, ITEM_FIELDS
from newsletter.errors import ContentError
from newsletter.text import has_control

PATH = Path("items/2026-W47/edition.md")
PIECES = st.sampled_from([
    "headline", "title", "dek", "subject", "url", ":", ": ", "\n", "- ", "[", "]", "{", "}",
    "&a ", "*a", "!!python/object:os.system", "!!binary", "'", '"', "\\x0b", "\\u2028", "#",
    "2026-02-30", "9" * 50, "yes", "~", "<<: ", "? ", "|", ">", "\t", "\x0b", "\u2028", "\x00",
    "\ufeff", "\u2019", "---",
])
source = st.lists(PIECES | st.text(max_size=6), max_size=30).map("".join)
FIELDS = st.sampled_from([EDITION_FIELDS, ITEM_FIELDS])


@settings(max_examples=400, deadline=2000)
@given(text=source, fields=FIELDS)
def test_any_front_matter_is_one_clear_error_or_text_fields(text, fields):
    try:
        meta = frontmatter.parse(PATH, text, fields)
    except ContentError as exc:
        message = str(exc)
        assert message.startswith(str(PATH)) and "\n" not in message
        event("refused")
        return
    event("parsed")
    assert set(meta) <= set(fields)
    for value in meta.values():
        assert isinstance(value, str) and value and not has_control(value)


@settings(max_examples=60, deadline=2000)
@given(depth=st.integers(min_value=1, max_value=5000), opener=st.sampled_from("[{"))
def test_deep_nesting_is_one_clear_error(depth, opener):
    closer = {"[": "]", "{": "}"}[opener]
    try:
        frontmatter.parse(PATH, f"headline: {opener * depth}{closer * depth}", EDITION_FIELDS)
    except ContentError as exc:
        assert "\n" not in str(exc)
