"""Header fields as bytes: text in RFC 2047 encoded words where it needs them, every line
folded within 76 octets, decoding back to the text given.

Words that can stay as they are (ASCII, and for display names only the characters an atom
allows) stay readable; each run of other words becomes UTF-8 encoded words holding whole
characters, in Q (or B, when clearly shorter). A space between a plain word and an encoded one is a
real space to every decoder; the white space between two adjacent encoded words is not
(RFC 2047 section 6.2), so a run that takes several encoded words decodes to exactly the run.
(Python's parser of address headers keeps that white space, CPython gh-128110; mail clients,
and Python's own Subject parsing, follow the RFC.) A Subject with odd spacing (leading, trailing or
repeated spaces) is encoded whole, which keeps every space; display names are shown with
their spaces normalized (no runs, none at the ends), as every mail client shows them anyway.

A value with a control character is refused (HeaderError naming the header): folding splits
on CR and LF and, in Python, on VT, FF and U+2028 too, which is how a name becomes a header.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

from ..errors import HeaderError
from ..text import has_control

MAX_LINE = 76        # RFC 2047's limit for a line with encoded words (RFC 5322 says 78)
MAX_WORD = 66        # an encoded word, delimiters included, leaving room for "Reply-To: "
MAX_PLAIN = 60       # a longer word is encoded, so that it can be split over lines
_PREFIX = "=?utf-8?"
# The characters Q encoding may leave as they are even inside a phrase (RFC 2047 5(3)).
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")  # RFC 5322 atext
_SPACES = re.compile(" {2,}")


def unstructured(name: str, value: str) -> bytes:
    """``Subject: value``, folded, encoded where needed; every space kept."""
    _check(name, value)
    if value != value.strip(" ") or "  " in value:
        atoms = _encoded_words(value)
    else:
        atoms = _atoms(value, _plain_text)
    return _fold(f"{name}:", atoms)


def mailbox(name: str, display: str, addr: str) -> bytes:
    """``From: display <addr>`` (just ``addr`` without a display name); ``addr`` must already
    be ASCII (the envelope form)."""
    return named(name, display, f"<{addr}>", bare=addr)


def named(name: str, display: str, angle: str, *, bare: str | None = None) -> bytes:
    """A display name followed by an ``<...>`` part: a mailbox, or List-Id's name and id."""
    _check(name, display)
    _check(name, angle)
    if not angle.isascii():
        raise HeaderError(f"header {name}: {angle!r} must be ASCII")
    display = _SPACES.sub(" ", display.strip(" "))
    if not display:
        return _fold(f"{name}:", [bare if bare is not None else angle])
    return _fold(f"{name}:", [*_atoms(display, _plain_phrase), angle])


def phrase(display: str) -> str:
    """A display name as header-safe ASCII, unfolded: for providers that take header values
    as strings (``List-Id: <phrase> <id>``). Empty for an empty name."""
    _check("display name", display)
    display = _SPACES.sub(" ", display.strip(" "))
    return " ".join(_atoms(display, _plain_phrase)) if display else ""


def _plain_text(word: str) -> bool:
    return word.isascii() and word.isprintable() and "=?" not in word and len(word) <= MAX_PLAIN


def _plain_phrase(word: str) -> bool:
    return _ATOM.fullmatch(word) is not None and "=?" not in word and len(word) <= MAX_PLAIN


def _atoms(text: str, plain: Callable[[str], bool]) -> list[str]:
    """Words separated by single spaces, each plain or part of an encoded run."""
    atoms: list[str] = []
    run: list[str] = []
    for word in text.split(" "):
        if plain(word):
            if run:
                atoms += _encoded_words(" ".join(run))
                run = []
            atoms.append(word)
        else:
            run.append(word)
    if run:
        atoms += _encoded_words(" ".join(run))
    return atoms


def _encoded_words(text: str) -> list[str]:
    """``text`` as UTF-8 encoded words of at most MAX_WORD characters, whole characters in
    each; Q keeps to the characters a phrase allows, so the words serve display names too.
    Q, which leaves ASCII readable, unless B is clearly shorter (mostly non-Latin text)."""
    q_pieces = [_q_piece(c) for c in text]
    if sum(map(len, q_pieces)) <= 1.3 * ((len(text.encode("utf-8")) + 2) // 3 * 4):
        return _q_words(q_pieces)
    return _b_words(text)


def _q_words(pieces: list[str]) -> list[str]:
    budget = MAX_WORD - len(_PREFIX) - 4  # "=?utf-8?" "q?" ... "?="
    words: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(piece) > budget:
            words.append(f"{_PREFIX}q?{current}?=")
            current = ""
        current += piece
    words.append(f"{_PREFIX}q?{current}?=")
    return words


def _b_words(text: str) -> list[str]:
    limit = (MAX_WORD - len(_PREFIX) - 4) // 4 * 3  # bytes a word holds
    words: list[str] = []
    chunk = b""
    for char in text:
        data = char.encode("utf-8")
        if chunk and len(chunk) + len(data) > limit:
            words.append(f"{_PREFIX}b?{base64.b64encode(chunk).decode('ascii')}?=")
            chunk = b""
        chunk += data
    words.append(f"{_PREFIX}b?{base64.b64encode(chunk).decode('ascii')}?=")
    return words


def _q_piece(char: str) -> str:
    if char in _Q_SAFE:
        return char
    if char == " ":
        return "_"
    return "".join(f"={b:02X}" for b in char.encode("utf-8"))


def _fold(head: str, atoms: list[str]) -> bytes:
    """``head`` and the atoms, one space before each, a line break before the space where a
    line would grow past MAX_LINE. Only an ``<addr>`` can make a line longer than that; RFC
    5322's hard limit of 998 still holds."""
    lines = [head]
    for atom in atoms:
        if len(lines[-1]) + 1 + len(atom) <= MAX_LINE or lines[-1] == head:
            lines[-1] += " " + atom
        else:
            lines.append(" " + atom)
    if any(len(line) > 998 for line in lines):
        raise HeaderError(f"header {head[:-1]} is too long for a mail header")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _check(name: str, value: str) -> None:
    if has_control(value):
        raise HeaderError(f"header {name} must be one line of text without control "
                          f"characters, got {value!r}")
