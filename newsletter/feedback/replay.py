"""Remembering one-time tokens: the seam Mailgun's verification uses against replays.

Mailgun signs only a timestamp and a random token, not the body, so a captured request could
be sent again with another event inside. A token may therefore be used for one event only.
The same token with the same event is a retry (Mailgun retries a delivery we answered with
5xx), which is let through: the event log stores it once. The web app's guard keeps the
tokens in the database (``replay_store``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class ReplayGuard(Protocol):
    def claim(self, provider: str, token: str, fingerprint: str, expires_at: datetime) -> bool:
        """Record ``token`` for ``fingerprint`` until ``expires_at``.

        True when the token is new, or was seen with the same fingerprint (a retry); False
        when it was seen with a different one (a replay with another body).
        """
        ...
