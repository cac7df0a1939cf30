"""A batch's JSON body as fragments that share the edition's text.

A batch of 500 full messages is about 15 MB of JSON, and the request keeps its body until it
is answered, so that a retry sends exactly the same bytes. Written out, four batches in flight
would hold 60 MB that differ only in a few names and links. Here a filled-in part (``Filled``)
stays as its template and one recipient's values: its JSON is the template's literal
stretches, escaped once per edition and shared by every message, interleaved with that
recipient's escaped values. A batch then holds its messages' small fields and values (a few
KB each) and references to the shared stretches. JSON escaping works character by character,
so the escaped stretches and values join to exactly the escaped whole.

The fragments are immutable: every attempt streams the same bytes, in pieces of
``PIECE_BYTES`` (a write per fragment would cost the HTTP stack far more than the copy).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from ..edition.placeholders import FieldTemplate
from ..message.model import Outgoing, Personalized

PIECE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Filled:
    """One recipient's part (HTML or text): ``template`` with ``values`` filled in."""

    template: FieldTemplate
    values: Mapping[str, str]

    def __str__(self) -> str:
        return self.template.fill(self.values)


def filled_parts(outgoing: Outgoing, person: Personalized) -> tuple[Filled, Filled]:
    """The HTML and text parts for ``person``, not yet joined: a JSON body keeps them as the
    edition's shared text and the values."""
    return Filled(outgoing.html, person.html_values), Filled(outgoing.text, person.values)


def plain(message: Mapping[str, Any]) -> dict[str, Any]:
    """``message`` with its filled-in parts as the strings they stand for."""
    return {k: str(v) if isinstance(v, Filled) else v for k, v in message.items()}


def array_fragments(messages: Iterable[Mapping[str, Any]]) -> list[bytes]:
    """The JSON array of ``messages`` (``Filled`` values allowed at the top level of each)."""
    out = [b"["]
    for i, message in enumerate(messages):
        if i:
            out.append(b",")
        _message(message, out)
    out.append(b"]")
    return out


async def stream(fragments: list[bytes], piece_bytes: int = PIECE_BYTES) -> AsyncIterator[bytes]:
    piece = bytearray()
    for fragment in fragments:
        piece += fragment
        if len(piece) >= piece_bytes:
            yield bytes(piece)
            piece.clear()
    if piece:
        yield bytes(piece)


def _message(message: Mapping[str, Any], out: list[bytes]) -> None:
    small = {k: v for k, v in message.items() if not isinstance(v, Filled)}
    # A slice is a copy of its own size: orjson's result keeps its writer's buffer (about
    # 256 KB whatever the length), which 500 messages would otherwise each hold on to.
    head = orjson.dumps(small)[:-1]
    separator = b"," if small else b""
    out.append(head)
    for key, part in message.items():
        if isinstance(part, Filled):
            out.append(separator + orjson.dumps(key) + b':"')
            separator = b","
            _part(part, out)
            out.append(b'"')
    out.append(b"}")


def _part(part: Filled, out: list[bytes]) -> None:
    out += part.template.interleave(_escaped_literals(part.template), part.values, _escape)


@lru_cache(maxsize=16)
def _escaped_literals(template: FieldTemplate) -> tuple[bytes, ...]:
    return tuple(_escape(literal) for literal in template.literals)


def _escape(text: str) -> bytes:
    """``text`` as the inside of a JSON string."""
    return orjson.dumps(text)[1:-1]
