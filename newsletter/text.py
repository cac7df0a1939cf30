"""Text that becomes part of a mail header must be one line: one check, used at every door."""

from __future__ import annotations

import re

from .errors import HeaderError

# C0 and C1 controls and the Unicode line and paragraph separators: none belongs in a one-line
# value (header folding splits on some of them, which is how a name injects a header).
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control(value: str) -> bool:
    return CONTROL_CHARS.search(value) is not None


def one_line(value: str, what: str) -> str:
    """``value`` unchanged, or HeaderError naming ``what`` when it holds a control character."""
    if has_control(value):
        raise HeaderError(f"{what} must be one line of text without control characters")
    return value


# White space at either end that is safe to drop: spaces (any Unicode space, e.g. a no-break
# space pasted from a web page) and tabs, but no line break or other control character, which
# str.strip() would silently remove and which must be refused instead.
_SPACES = "\t\x20\xa0\u1680\u2000-\u200a\u202f\u205f\u3000\ufeff"
_EDGES = re.compile(f"^[{_SPACES}]+|[{_SPACES}]+$")


def strip_spaces(value: str) -> str:
    """``value`` without spaces and tabs at either end; line breaks and controls are kept, so
    that a check can refuse them."""
    if value[:1].isalnum() and value[-1:].isalnum():
        return value  # the common case, without the regular expression
    return _EDGES.sub("", value)
