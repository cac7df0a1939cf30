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
