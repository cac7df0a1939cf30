"""The brake's arithmetic: pause a send whose hard bounces or complaints run too high.

Rates are of the messages the send has delivered to the provider (``sent``), counting each
subscriber once per kind, from the event log: ``bounced`` (permanent) and ``complained`` only;
a provider's echo that it already suppresses an address (``rejected``) is not a new bounce.

A rate is held against its threshold only once the sample is big enough: at least
``min_sent`` messages (or the whole canary slice, when it is smaller: the slice is the sample
the operator chose) and at least ``min_events`` of that kind, so that a handful of bounces
early in a send, or in a small list, does not stop it. The defaults follow what providers
and mailbox operators act on: Amazon SES reviews an account at 5 % bounces, Gmail refuses
help to senders at 0.3 % spam complaints; PostHog's per-campaign breaker pauses at the same
figures over 1,000 sends with at least 10 events.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config

BOUNCE_RATE = 0.05
COMPLAINT_RATE = 0.003
MIN_SENT = 1000
MIN_EVENTS = 10


@dataclass(frozen=True)
class Thresholds:
    bounce_rate: float = BOUNCE_RATE        # 0: never pause on bounces
    complaint_rate: float = COMPLAINT_RATE  # 0: never pause on complaints
    min_sent: int = MIN_SENT
    min_events: int = MIN_EVENTS

    @classmethod
    def of(cls, config: Config) -> Thresholds:
        return cls(config.brake_bounce_rate, config.brake_complaint_rate,
                   config.brake_min_sent, config.brake_min_events)

    @property
    def off(self) -> bool:
        return not self.bounce_rate and not self.complaint_rate


@dataclass(frozen=True)
class Figures:
    """What the brake judges: messages sent, subscribers hard-bounced, complained."""

    sent: int
    bounced: int = 0
    complained: int = 0

    def rate(self, kind: str) -> float:
        return getattr(self, kind) / self.sent if self.sent else 0.0

    def line(self) -> str:
        return (f"{self.bounced} hard bounce{_s(self.bounced)} "
                f"({self.rate('bounced'):.1%}), {self.complained} complaint"
                f"{_s(self.complained)} ({self.rate('complained'):.2%}) of {self.sent:,} "
                "sent")


def judge(figures: Figures, limits: Thresholds, *, canary_size: int = 0) -> str | None:
    """None while the send may go on; otherwise why it must pause, with the figures."""
    sample = min(limits.min_sent, canary_size) if canary_size else limits.min_sent
    if figures.sent < max(sample, 1):
        return None
    over = []
    for kind, limit, words in (("bounced", limits.bounce_rate, "hard bounces"),
                               ("complained", limits.complaint_rate, "complaints")):
        count = getattr(figures, kind)
        if limit and count >= limits.min_events and figures.rate(kind) >= limit:
            over.append(f"{words} {figures.rate(kind):.2%} ({count:,} of {figures.sent:,} "
                        f"sent) reached brake_{'bounce' if kind == 'bounced' else 'complaint'}"
                        f"_rate {limit:.2%}")
    if not over:
        return None
    return "the brake: " + "; ".join(over)


def _s(n: int) -> str:
    return "" if n == 1 else "s"
