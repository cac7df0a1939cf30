"""The subscriber as the rest of the code sees it, and the statuses a subscriber moves through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class SubscriberStatus(StrEnum):
    PENDING = "pending"            # signed up, awaiting confirmation (double opt-in)
    ACTIVE = "active"              # receives every edition
    UNSUBSCRIBED = "unsubscribed"  # asked to stop
    BOUNCED = "bounced"            # the address does not take mail
    COMPLAINED = "complained"      # reported a message as spam


STATUSES = tuple(SubscriberStatus)
# Statuses that mean "never send again"; only a new, confirmed consent may lift them.
STOPPED = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)
# What a subscriber can be added as.
ADDABLE = (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)

# Columns CSV export writes and import understands (audience.transfer); any other column is an
# attribute, so no attribute may take one of these names.
EXPORT_COLUMNS = (
    "email",
    "name",
    "status",
    "source",
    "consented_at",
    "confirmed_at",
    "unsubscribed_at",
    "unsubscribe_reason",
    "created_at",
)
EMAIL_COLUMNS = ("email", "e-mail")
ERASED_MESSAGE = "address was removed on request; not re-subscribed"


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str | None
    status: str
    source: str
    attributes: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    consented_at: datetime | None = None
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    unsubscribe_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 strings."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        out["attributes"] = dict(self.attributes)
        return out
