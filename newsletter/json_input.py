"""JSON from outside (webhook bodies, the sign-up API, a proof of work): one bounded decoder.

Python's decoders recurse once per level of nesting, so a body nested a thousand deep raised
``RecursionError`` (a 500 with a traceback) where it should have been refused. ``loads``
measures the nesting first, over the bytes and without recursion, and refuses more than
``MAX_DEPTH`` levels (no provider's payload nests more than six); only then does orjson
decode, strictly: UTF-8 only (no byte order mark, no lone surrogates), no ``NaN`` or
``Infinity``, no number beyond a double. Every refusal is one ``UnreadableJSON`` whose
message completes "the body is ...".
"""

from __future__ import annotations

import operator
import re
from itertools import accumulate, count
from typing import Any

import orjson

MAX_DEPTH = 64
# A JSON string (the unrolled loop, possessive: no backtracking), or all that follows a quote
# that never closes: either way the scan resumes after it, so it stays linear in the text.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
_OTHER_BYTES = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


class UnreadableJSON(ValueError):
    """Not JSON this program reads: the message says why in a few words ("not JSON")."""


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of ``data``, or UnreadableJSON."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            raise UnreadableJSON("not UTF-8") from None
    if nests_deeper(data, max_depth):
        raise UnreadableJSON(f"nested deeper than {max_depth} levels")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UnreadableJSON("not JSON" if _is_utf8(data) else "not UTF-8") from None


def nests_deeper(data: bytes, limit: int) -> bool:
    """Whether arrays and objects in ``data`` nest more than ``limit`` levels deep.

    Strings are cut out and every other byte but the brackets dropped; an opening bracket
    becomes 2 and a closing one 0, so the running sum of the first k brackets, less k, is the
    depth after them. One linear pass in C (``accumulate``), whatever the shape of the text.
    """
    steps = _STRING.sub(b"", data).translate(_STEPS, _OTHER_BYTES)
    if len(steps) <= limit:
        return False
    return max(map(operator.sub, accumulate(steps), count(1))) > limit


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
