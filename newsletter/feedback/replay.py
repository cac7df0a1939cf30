"""Remembering one-time tokens: the seam Mailgun's verification uses against replays.

Mailgun signs only a timestamp and a random token, not the body, so a captured request could
be sent again with another event inside. A token may therefore be used for one event only.
The same token with the same event is a retry (Mailgun retries a delivery we answered with
5xx), which is let through: the event log stores it once. The store behind the guard is the
caller's choice; ``MemoryReplayGuard`` serves one process and the tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class ReplayGuard(Protocol):
    def claim(self, provider: str, token: str, fingerprint: str, expires_at: datetime) -> bool:
        """Record ``token`` for ``fingerprint`` until ``expires_at``.

        True when the token is new, or was seen with the same fingerprint (a retry); False
        when it was seen with a different one (a replay with another body).
        """
        ...


class MemoryReplayGuard:
    """Tokens in a dict; expired ones are dropped as the dict grows (``clock`` is injectable)."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[str, datetime]] = {}
        self._lock = threading.Lock()
        self._sweep_at = 1024

    def claim(self, provider: str, token: str, fingerprint: str, expires_at: datetime) -> bool:
        key = (provider, token)
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and seen[1] > self._clock():
                return seen[0] == fingerprint
            self._seen[key] = (fingerprint, expires_at)
            if len(self._seen) >= self._sweep_at:
                now = self._clock()
                self._seen = {k: v for k, v in self._seen.items() if v[1] > now}
                self._sweep_at = max(1024, 2 * len(self._seen))
            return True

    @property
    def held(self) -> int:
        """How many tokens are remembered (not ``__len__``: an empty guard must not be falsy)."""
        return len(self._seen)
