"""Transports: one module per provider, all behind the interface in ``base.py``.

Each provider module declares what it is in ``INFO`` (``info.ProviderInfo``); ``REGISTRY``
maps the ``provider`` config value to it. A module is imported only when its ``INFO`` is
looked up, so naming the providers (which validating a config does) loads none of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .info import ProviderInfo

if TYPE_CHECKING:
    from ..config import Config
    from .base import Transport


class Registry(Mapping[str, ProviderInfo]):
    """Provider name -> its module's ``INFO``; the module is imported on first look-up."""

    def __init__(self, names: tuple[str, ...]):
        self._names = names

    def __getitem__(self, name: str) -> ProviderInfo:
        if name not in self._names:
            raise KeyError(name)
        info: ProviderInfo = import_module(f"{__name__}.{name}").INFO
        return info

    def __contains__(self, name: object) -> bool:
        return name in self._names  # without importing the module, as Mapping's would

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


# One module each, named as the ``provider`` key names it.
REGISTRY = Registry(("eml", "postmark", "sendgrid", "mailgun", "ses", "resend", "smtp"))


def transport_class(provider: str) -> type:
    return REGISTRY[provider].transport


def make_transport(config: Config, *, out_dir: Path | None = None,
                   **options: Any) -> Transport:
    """The configured provider's transport. ``options`` reach its HTTP client (tests)."""
    cls = transport_class(config.provider)
    if config.provider == "eml":
        return cls(out_dir or Path(config.outbox_dir))  # type: ignore[no-any-return]
    return cls(config, **options)  # type: ignore[no-any-return]
