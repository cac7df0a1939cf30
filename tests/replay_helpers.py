"""A replay guard in memory, for webhook tests that run without a database.

The web app's guard is ``feedback.replay_store.DatabaseReplayGuard``; this one keeps the same
promise (a token serves one event; the same event again is a retry) in a dict.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from newsletter.clock import utc_now


class MemoryReplayGuard:
    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[str, datetime]] = {}

    def claim(self, provider: str, token: str, fingerprint: str, expires_at: datetime) -> bool:
        seen = self._seen.get((provider, token))
        if seen is not None and seen[1] > self._clock():
            return seen[0] == fingerprint
        self._seen[(provider, token)] = (fingerprint, expires_at)
        return True
