"""The recipient of one message: what personalization and transports need of a subscriber."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def envelope_address(email: str) -> str:
    """The bare address with an internationalized domain in its ASCII (IDNA) form."""
    local, _, domain = email.strip().rpartition("@")
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


@dataclass(frozen=True, slots=True)
class Recipient:
    id: int
    email: str
    name: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
