"""Taking in verified events, from a webhook or a mail: match, store, then apply.

One write transaction settles the request's replay claims, matches its events, stores them
and applies what it can of their effects (``effects``: the bounces); the complaints and
unsubscribes follow once it has committed. The caller may acknowledge the events once
``take_in`` returns: they are stored, and their effects applied. If the process dies in
between, the provider (or the mailbox) delivers the events again, ``store`` hands back the
ones still waiting, and their effects are applied then.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from ..clock import utc_now
from ..config import Config
from ..store.db import begin_write
from . import effects, store
from .events import Event
from .matching import match_events
from .replay_store import DeferredReplay, settle


@dataclass(frozen=True)
class Rules:
    """What intake needs of the configuration."""

    secrets: tuple[str, ...]  # the unsubscribe tokens' signing keys, current first
    soft_bounce_limit: int = 3

    @classmethod
    def from_config(cls, config: Config) -> Rules:
        return cls(tuple(config.verification_keys), config.soft_bounce_limit)


@dataclass
class Intake:
    events: int = 0
    new: int = 0
    duplicates: int = 0
    effects: Counter[str] = field(default_factory=Counter)

    def add(self, other: Intake) -> None:
        self.events += other.events
        self.new += other.new
        self.duplicates += other.duplicates
        self.effects.update(other.effects)

    @property
    def suppressed(self) -> int:
        return self.effects["suppressed"]

    def summary(self) -> str:
        """One line for a log or the terminal: counts only, no addresses."""
        acted = ", ".join(f"{n} {what}" for what, n in sorted(self.effects.items())
                          if what in ("suppressed", "unsubscribed"))
        text = f"{self.events} event(s), {self.new} new, {self.duplicates} already stored"
        return f"{text}; {acted}" if acted else text


@dataclass(frozen=True)
class Arrival:
    """The events of one request (or one mail), with its replay claims to settle."""

    events: Sequence[Event]
    received_at: datetime
    replay: DeferredReplay | None = None


def take_in(engine: sa.Engine, events: Sequence[Event], rules: Rules, *,
            received_at: datetime, replay: DeferredReplay | None = None,
            clock: Callable[[], datetime] = utc_now) -> Intake:
    """Store ``events`` once each and apply their effects; see the module docstring.

    Raises ``ReplayedRequest`` (nothing stored) when ``replay`` holds a token used before for
    another event, and SQLAlchemy's errors when the database fails.
    """
    return take_in_many(engine, [Arrival(events, received_at, replay)], rules, clock=clock)[0]


def take_in_many(engine: sa.Engine, arrivals: Sequence[Arrival], rules: Rules, *,
                 clock: Callable[[], datetime] = utc_now) -> list[Intake]:
    """``take_in`` for several requests at once: one transaction stores them all (a burst of
    webhooks costs one commit, not one each). A failure fails them all; the caller may then
    take them in one by one."""
    with begin_write(engine) as conn:
        settle(conn, [(c, a.received_at) for a in arrivals if a.replay is not None
                      for c in a.replay.claims])
        every = [event for arrival in arrivals for event in arrival.events]
        matches = iter(match_events(conn, every, secrets=rules.secrets))
        recorded = store.record_many(conn, [
            (a.events, [next(matches) for _ in a.events], a.received_at) for a in arrivals])
        plan = effects.apply_in(conn, [p for r in recorded for p in r.pending],
                                soft_bounce_limit=rules.soft_bounce_limit, now=clock())
    done = effects.finish(engine, plan, clock)
    return [Intake(len(a.events), r.new, r.duplicates,
                   Counter(done[p.id] for p in r.pending if p.id in done))
            for a, r in zip(arrivals, recorded, strict=True)]
