"""``ProviderInfo``: what the rest of the package knows of a provider, declared by its module.

Each provider module ends with ``INFO = ProviderInfo(...)``; ``providers.REGISTRY`` finds it by
the provider's name. Configuration checks the name against the registry, a send records and
checks ``endpoint(config)``, the inbound dispatcher finds the provider's webhook module by
``webhook``, and the documentation tests read the rest. This module imports nothing heavy: the
registry is read while a config is validated, before any provider is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config


@dataclass(frozen=True)
class ProviderInfo:
    name: str                   # the ``provider`` config value, and the module's name
    transport: type             # its class: ``transport(config)`` (``eml``: its folder)
    settings: tuple[str, ...]   # the config keys it reads beyond the shared ones
    # Where it sends unless ``provider_base_url`` (when it reads that key) says otherwise: a
    # URL, or a function of the config for an endpoint the config spells (region, host, folder).
    default_endpoint: str | Callable[[Config], str]
    webhook: str | None = None  # its module in ``feedback/webhooks/``, if it reports events
    # How an ``unknown`` row is resolved (``delivery.reconcile``): "api", the transport asks
    # the provider (``base.Reconciler``); "events", from the acceptance events its webhook
    # delivered (SendGrid's ``processed``, SES's ``Send``); None: it cannot be (SMTP, eml).
    reconciles: str | None = None

    def endpoint(self, config: Config) -> str:
        """Where this provider sends with ``config``: a send records it and resumes only
        through the same one."""
        if "provider_base_url" in self.settings and config.provider_base_url:
            return config.provider_base_url.rstrip("/")
        if callable(self.default_endpoint):
            return self.default_endpoint(config)
        return self.default_endpoint.rstrip("/")
