"""Recipient placeholders: render the edition once, fill in each recipient later.

Templates see ``recipient.name``, ``recipient.first_name``, ``recipient.email``,
``recipient.unsubscribe_url``, ``recipient.manage_url`` and ``recipient.attributes.<key>``.
While the edition renders, each of these yields a marker ``@@<nonce>:<field>@@``; MJML and CSS
inlining carry markers through untouched, and the rendered output is then split into literal
text and field names. The nonce derives from the edition's content, so no item text can forge a
marker. Recipient values are substituted verbatim: Jinja filters on them would see the marker,
not the value, so ``recipient_uses`` refuses them, and ``FieldTemplate.split`` refuses any
rendered text in which a marker was altered or cut, so that none can ever be mailed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from markupsafe import Markup

from ..errors import TemplateError

T = TypeVar("T")

RECIPIENT_FIELDS = ("name", "first_name", "email", "unsubscribe_url", "manage_url")


class _Attributes:
    def __init__(self, marker: Callable[[str], Markup]):
        self._marker = marker

    def __getattr__(self, key: str) -> Markup:
        if key.startswith("_"):
            raise AttributeError(key)
        return self._marker(f"attributes.{key}")

    __getitem__ = __getattr__


class RecipientMarkers:
    """What templates see as ``recipient`` during the one render of an edition."""

    def __init__(self, nonce: str):
        self.nonce = nonce
        self.attributes = _Attributes(self.marker)

    def marker(self, field: str) -> Markup:
        return Markup(f"@@{self.nonce}:{field}@@")

    def __getattr__(self, key: str) -> Markup:
        if key in RECIPIENT_FIELDS:
            return self.marker(key)
        raise AttributeError(key)


class WebReader:
    """What templates see as ``recipient`` in the web version of an edition (the archive):
    nobody's data, no token; the unsubscribe and manage links become the sign-up page."""

    name = ""
    email = ""
    first_name = "there"

    def __init__(self, subscribe_url: str):
        self.unsubscribe_url = subscribe_url
        self.manage_url = subscribe_url
        self.attributes = _NoAttributes()


class _NoAttributes:
    def __getattr__(self, key: str) -> str:
        if key.startswith("_"):
            raise AttributeError(key)
        return ""

    __getitem__ = __getattr__


@dataclass(frozen=True, slots=True)
class FieldTemplate:
    """Rendered text split at recipient fields: literal, field, literal, ..., literal."""

    literals: tuple[str, ...]
    fields: tuple[str, ...]

    @classmethod
    def split(cls, rendered: str, nonce: str, source: str = "the template") -> FieldTemplate:
        """Raise TemplateError naming ``source`` when a marker did not survive intact (a
        filter changed it, a transform cut or escaped it): it would be mailed as it is."""
        parts = re.split(rf"@@{re.escape(nonce)}:([A-Za-z0-9_.\-]+)@@", rendered)
        literals = tuple(parts[0::2])
        probe = nonce[:8].lower()
        for literal in literals:
            at = literal.lower().find(probe)
            if at >= 0:
                line = rendered[: rendered.find(literal) + at].count("\n") + 1
                raise TemplateError(
                    f"{source}: a recipient field was altered while rendering (output line "
                    f"{line}: {literal[max(0, at - 2): at + 40]!r}); print recipient.* as it "
                    "is, without filters: its value is filled in per message")
        return cls(literals=literals, fields=tuple(parts[1::2]))

    def fill(self, values: Mapping[str, str]) -> str:
        return "".join(self.interleave(self.literals, values, str))

    def interleave(self, literals: Sequence[T], values: Mapping[str, str],
                   encode: Callable[[str], T]) -> list[T]:
        """``literals`` (these stretches, or an encoding of each) with every field's value,
        encoded, in between; empty values are left out. A message's body, in whatever form
        a transport writes it, is these pieces joined."""
        out = [literals[0]]
        for field, literal in zip(self.fields, literals[1:], strict=True):
            value = values[field]
            if value:
                out.append(encode(value))
            out.append(literal)
        return out
