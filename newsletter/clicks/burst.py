"""Bursts: one client fetching ``DISTINCT`` or more different links within ``WINDOW``
seconds is a link scanner (a reader does not open three stories in two seconds).

A click is held for ``WINDOW`` seconds before it is counted: only then is it known whether a
later fetch of the same client made it part of a burst, in which case every click of the
burst counts as filtered, the first ones too. Any window of ``WINDOW`` seconds holding three
different links ends at one of its fetches, so looking back from each new fetch finds them all.

"One client" is a key the caller makes (``counter.client_key``: a keyed hash of the address
and user agent); it is held here, in memory, for as long as that client's clicks are held,
and never written anywhere. Time is a monotonic clock's seconds, given by the caller.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

WINDOW = 2.0
DISTINCT = 3
MAX_HELD = 100_000  # clicks held at once; past it the oldest is judged early, as it stands
# A client's latest fetches looked back over for a burst: a flood from one client costs
# each fetch this much at most, not the length of the flood.
LOOK_BACK = 64

Link = TypeVar("Link")


@dataclass
class _Held(Generic[Link]):
    at: float
    client: bytes
    link: Link
    burst: bool = False


class BurstFilter(Generic[Link]):
    """Clicks in, judged clicks out: ``add`` each one, ``release`` those whose time is up."""

    def __init__(self, *, window: float = WINDOW, distinct: int = DISTINCT,
                 max_held: int = MAX_HELD):
        self._window, self._distinct, self._max_held = window, distinct, max_held
        self._queue: deque[_Held[Link]] = deque()  # every held click, oldest first
        self._clients: dict[bytes, deque[_Held[Link]]] = {}

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, client: bytes, link: Link, now: float) -> None:
        held = _Held(now, client, link)
        mine = self._clients.setdefault(client, deque())
        mine.append(held)
        self._queue.append(held)
        recent = list(itertools.takewhile(lambda h: now - h.at <= self._window,
                                          itertools.islice(reversed(mine), LOOK_BACK)))
        if len({h.link for h in recent}) >= self._distinct:
            for h in recent:
                h.burst = True

    def release(self, now: float, *, everything: bool = False) -> list[tuple[Link, bool]]:
        """The clicks judged by ``now``, each with whether it was part of a burst; with
        ``everything``, every click held (shutting down: a burst not yet complete is not
        one)."""
        out: list[tuple[Link, bool]] = []
        queue = self._queue
        while queue and (everything or len(queue) > self._max_held
                         or now - queue[0].at > self._window):
            held = queue.popleft()
            mine = self._clients[held.client]
            mine.popleft()  # the client's oldest: the queue and its deque keep one order
            if not mine:
                del self._clients[held.client]
            out.append((held.link, held.burst))
        return out
