"""The fake provider's searches: which module answers which GET, and the faults they share.

Each provider's search lives in its own module (``fake_search_postmark``, ``_mailgun``,
``_resend``) as ``answer(fake, path, query, headers) -> (status, body) | None``. A message is
found only ``Faults.index_delay`` seconds after it was accepted; ``search_p500`` and
``search_script`` make searches fail (500) or answer late, as a real search API can.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from . import fake_search_mailgun, fake_search_postmark, fake_search_resend

if TYPE_CHECKING:
    from .fake_provider import FakeProvider

SLOW_SECONDS = 5.0  # how late a "slow" scripted search answers


def answer(fake: FakeProvider, path: str, headers: Any) -> tuple[int, Any] | None:
    parts = urlsplit(path)
    query = parse_qsl(parts.query, keep_blank_values=True)
    for module in (fake_search_postmark, fake_search_mailgun, fake_search_resend):
        if module.handles(parts.path):
            fault = _fault(fake)
            if fault == "500":
                return 500, {"message": "internal error (a fault of the fake provider)"}
            if fault == "slow":
                time.sleep(SLOW_SECONDS)
            return module.answer(fake, parts.path, query, headers)
    return None


def _fault(fake: FakeProvider) -> str:
    with fake._lock:
        fake.searches += 1
        number = fake.searches
    steps = [s.strip() for s in fake.faults.search_script.split(",") if s.strip()]
    if number <= len(steps) and steps[number - 1] != "ok":
        return steps[number - 1]
    return "500" if fake.roll(fake.faults.search_p500) else ""

