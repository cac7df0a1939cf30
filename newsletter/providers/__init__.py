"""Transports: one module per provider, all behind the interface in ``base.py``.

``make_transport(config)`` picks the module named by the ``provider`` key; modules are
imported only when chosen.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from ..config import Config
from .base import Transport

# provider -> (module, class)
REGISTRY = {
    "eml": ("eml", "EmlTransport"),
    "postmark": ("postmark", "PostmarkTransport"),
    "sendgrid": ("sendgrid", "SendGridTransport"),
    "mailgun": ("mailgun", "MailgunTransport"),
    "ses": ("ses", "SesTransport"),
    "resend": ("resend", "ResendTransport"),
    "smtp": ("smtp", "SmtpTransport"),
}


def transport_class(provider: str) -> type:
    module_name, class_name = REGISTRY[provider]
    return getattr(import_module(f"{__name__}.{module_name}"), class_name)


def make_transport(config: Config, *, out_dir: Path | None = None, **options) -> Transport:
    """The configured provider's transport. ``options`` reach its HTTP client (tests)."""
    cls = transport_class(config.provider)
    if config.provider == "eml":
        return cls(out_dir or Path(config.outbox_dir))
    return cls(config, **options)
