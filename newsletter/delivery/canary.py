"""The canary: a slice of the list that gets the edition first, then a wait for what comes back.

``canary`` is 0 (off), a count of recipients (an integer of 1 or more) or a share of them (a
number below 1, or a percentage such as ``"10%"``). The slice is a random sample fixed per
send: drawn once, when the send starts, from a generator seeded with the send's id and content,
and kept in the ledger, so every resume and every sender sees the same one.

A send with a canary goes through three phases (``phase``): the canary slice is sent; then,
once none of its rows is left to send, it waits ``canary_wait`` seconds for bounces and
complaints (the brake judges them); then the rest goes out. A slice as large as the list is no
canary at all: the send goes out without one.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class Canary:
    count: int = 0       # this many recipients, or
    share: float = 0.0   # this share of them (0 < share < 1)

    @property
    def off(self) -> bool:
        return not self.count and not self.share

    def size(self, total: int) -> int:
        """The slice of a send of ``total``: at least one recipient; 0 when it would be
        everyone (or the canary is off)."""
        if self.off or total <= 1:
            return 0
        wanted = self.count or max(1, math.ceil(self.share * total))
        return wanted if wanted < total else 0

    def __str__(self) -> str:
        if self.count:
            return f"{self.count} recipient{'s' if self.count != 1 else ''}"
        return f"{self.share:.4g} of the list" if self.share else "off"


def parse_canary(value: str | int | float) -> Canary:
    """``canary`` as configured; ValueError saying what is wrong."""
    text = str(value).strip()
    match = _PERCENT.match(text)
    if match:
        percent = float(match.group(1))
        if not 0 <= percent < 100:
            raise ValueError(f"a percentage from 0 to below 100, got {text!r}")
        return Canary(share=percent / 100)
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"0, a count (25), a share (0.05) or a percentage (\"5%\"), got "
                         f"{text!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"0 or more, got {text!r}")
    if number >= 1:
        if number != int(number):
            raise ValueError(f"a whole count of recipients or a share below 1, got {text!r}")
        return Canary(count=int(number))
    return Canary(share=number)


def pick(ids: Sequence[int], size: int, seed: str) -> list[int]:
    """``size`` of ``ids``, a random sample that the same ``seed`` always draws again."""
    ordered = sorted(ids)
    return sorted(random.Random(seed).sample(ordered, min(size, len(ordered))))


def seed_of(send_id: int, content_hash: str) -> str:
    return f"canary:{send_id}:{content_hash}"


class Phase(StrEnum):
    NONE = "none"          # no canary: send everyone
    CANARY = "canary"      # only the slice may be claimed
    WAITING = "waiting"    # the slice is out; the wait has not ended
    REST = "rest"          # the wait is over: send everyone left


def phase(canary_size: int, canary_open: int, until: datetime | None, now: datetime) -> Phase:
    """Where a send stands: ``canary_open`` of the slice's rows still to send, the wait
    ending at ``until`` (None: not started, which it does once the slice is out)."""
    if not canary_size:
        return Phase.NONE
    if until is None:
        return Phase.CANARY if canary_open else Phase.WAITING
    return Phase.WAITING if now < until else Phase.REST
