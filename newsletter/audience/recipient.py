"""The recipient of one message: what personalization and transports need of a subscriber."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Recipient:
    id: int
    email: str
    name: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
