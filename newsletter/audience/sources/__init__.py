"""The export formats ``subscribers import --from`` reads, one module each, found by name:
``mailchimp``, ``substack``, ``buttondown``, ``listmonk``; ``csv`` (``native``) is this
program's own format and any other CSV, the default. Each is a pure mapping (``base.Source``);
``layout`` reads a file's header against one; ``audience.transfer`` does the rest."""

from __future__ import annotations

from ...errors import SubscriberError
from . import buttondown, listmonk, mailchimp, native, substack
from .base import Source

REGISTRY: dict[str, Source] = {s.name: s for s in (
    native.SOURCE, mailchimp.SOURCE, substack.SOURCE, buttondown.SOURCE, listmonk.SOURCE)}
NAMES = tuple(REGISTRY)


def find(name: str | None) -> Source:
    """The source called ``name`` (None: a plain CSV)."""
    if name is None:
        return native.SOURCE
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        raise SubscriberError(f"--from {name!r}: unknown source; expected one of: "
                              f"{', '.join(NAMES)}") from None
