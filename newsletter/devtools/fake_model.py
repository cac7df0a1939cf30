"""What the fake provider can be told to do wrong (``Faults``), and what it records of each
message it accepts (``Record``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fake_provider import FakeProvider


@dataclass
class Faults:
    p429: float = 0.0           # answer 429 with Retry-After
    p500: float = 0.0           # answer 500, accepting nothing
    p_drop_before: float = 0.0  # close the connection without accepting anything
    p_drop_after: float = 0.0   # accept the batch, then close the connection unanswered
    p_slow_after: float = 0.0   # accept the batch, then answer after `slow_seconds`
    slow_seconds: float = 5.0
    retry_after: float = 1.0
    bounce_marker: str = "bounce"   # addresses containing it fail (Postmark 406)
    invalid_marker: str = "invalid"  # addresses containing it fail (Postmark 300)
    fail_first: int = 0         # answer the first N requests with 500 (a burst)
    bad_token: str = ""         # this API token is refused with 401
    # Comma-separated faults for the 1st, 2nd, ... batch request (ok, 429, 500, drop_before,
    # drop_after, slow_after); requests after the last one are answered normally.
    script: str = ""
    # The providers' searches (Postmark's outbound messages, Mailgun's events, Resend's
    # emails): seconds before an accepted message can be found, a share of searches answered
    # 500, and a fixed sequence for the 1st, 2nd, ... search (ok, 500, slow).
    index_delay: float = 0.0
    search_p500: float = 0.0
    search_script: str = ""


@dataclass
class Record:
    provider: str
    to: str
    message_id: str
    subject: str
    metadata: dict[str, Any]
    idempotency_key: str = ""
    accepted_at: float = field(default_factory=time.time)  # epoch seconds
    stream: str = ""  # the message stream it was sent on (Postmark's MessageStream)
    sender: str = ""  # its From, as the request gave it (Mailgun's events show it)


FAULT_HELP = {
    "p429": "share of requests answered 429 with Retry-After (0 to 1)",
    "p500": "share of requests answered 500, accepting nothing (0 to 1)",
    "p_drop_before": "share of connections closed before accepting anything (0 to 1)",
    "p_drop_after": "share of batches accepted, then the connection closed unanswered",
    "p_slow_after": "share of batches accepted, then answered after --slow-seconds",
    "slow_seconds": "how late a slow answer comes (default: %(default)s)",
    "retry_after": "the Retry-After seconds of a 429 (default: %(default)s)",
    "bounce_marker": "addresses containing this fail as bounced (default: %(default)s)",
    "invalid_marker": "addresses containing this fail as invalid (default: %(default)s)",
    "fail_first": "answer the first N requests with 500, a burst (default: 0)",
    "bad_token": "refuse this API token with 401",
    "script": "comma-separated faults for the 1st, 2nd, ... batch request (ok, 429, 500, "
              "drop_before, drop_after, slow_after); later requests are answered normally",
    "index_delay": "seconds before an accepted message shows in the search APIs (default: 0)",
    "search_p500": "share of search requests answered 500 (0 to 1)",
    "search_script": "comma-separated answers for the 1st, 2nd, ... search (ok, 500, slow)",
}




def searchable(fake: FakeProvider, provider: str) -> list[Record]:
    """The provider's accepted messages that its search shows by now (``index_delay`` after
    they were accepted), oldest first."""
    horizon = time.time() - fake.faults.index_delay
    with fake._lock:
        return [r for r in fake.records if r.provider == provider and r.accepted_at <= horizon]
