"""What the edition report holds: plain figures, no addresses (domains at most)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

# Without click_counts (and no counts from when it was on) the clicks section says so.
CLICKS_OFF = "click counting is off (click_counts)"
NO_CLICKS = "no link of this edition has been fetched yet"


@dataclass(frozen=True)
class Funnel:
    """The send's figures, as ``newsletter status`` shows them: the ledger's counts and the
    feedback per subscriber (``feedback.report.Feedback``)."""

    subscribers_at_start: int  # the ledger's rows: the list as the send snapshotted it
    sent: int
    failed: int
    bounced_hard: int
    bounced_soft: int
    complained: int
    unsubscribed: int


@dataclass(frozen=True)
class DomainFigures:
    domain: str  # Unicode, lower-cased; "(erased)" for subscribers erased since
    bounced: int
    complained: int

    @property
    def total(self) -> int:
        return self.bounced + self.complained


@dataclass(frozen=True)
class WeekGrowth:
    week: str
    joined: int     # a subscriber's first status (any)
    confirmed: int  # became active (confirmed, added active, or resubscribed)
    left: int       # went from active to unsubscribed, bounced or complained


@dataclass(frozen=True)
class EditionUnsubscribes:
    """One edition's unsubscribes by day after its send started (day 1 = its first 24 h)."""

    week: str
    by_day: tuple[int, ...]
    later: int  # after the days shown


@dataclass(frozen=True)
class LinkClicks:
    """One counted link of an item (``click_counts``' row)."""

    link: int      # its number in the item, from 1
    url: str       # where it goes
    clicks: int    # readers' clicks
    filtered: int  # HEAD requests, prefetches, scanners, bursts


@dataclass(frozen=True)
class ItemClicks:
    item: int     # the item's number in the edition, from 1
    title: str    # as the week's folder has it now ("item 3" when it is gone)
    clicks: int   # over the item's links
    filtered: int
    links: tuple[LinkClicks, ...]  # the most clicked first, at most ``clicks.TOP_LINKS``


@dataclass(frozen=True)
class Clicks:
    enabled: bool = False
    note: str = CLICKS_OFF
    items: tuple[ItemClicks, ...] = ()  # in the edition's order


@dataclass(frozen=True)
class EditionReport:
    week: str
    subject: str
    status: str
    provider: str
    started_at: datetime
    finished_at: datetime | None
    generated_at: datetime
    funnel: Funnel
    deliveries: dict[str, int]  # every ledger state's count, as `status` lists them
    domains: tuple[DomainFigures, ...]  # the top ten by bounces and complaints
    other_domains: DomainFigures | None  # the rest, summed; None when there is no rest
    growth: tuple[WeekGrowth, ...]  # oldest first, ending with the report's week
    unsubscribes: tuple[EditionUnsubscribes, ...]  # oldest first, ending with this edition
    clicks: Clicks = field(default_factory=Clicks)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types, dates as ISO 8601, keys in a fixed order."""
        out = asdict(self)
        for key in ("started_at", "finished_at", "generated_at"):
            value = getattr(self, key)
            out[key] = value.isoformat() if value else None
        out["domains"] = [_domain_dict(d) for d in self.domains]
        out["other_domains"] = _domain_dict(self.other_domains) if self.other_domains else None
        out["clicks"]["items"] = [{**item, "links": list(item["links"])}
                                  for item in out["clicks"]["items"]]
        for part in out["unsubscribes"]:
            part["by_day"] = list(part["by_day"])
        return out


def _domain_dict(figures: DomainFigures) -> dict[str, Any]:
    return {"domain": figures.domain, "bounced": figures.bounced,
            "complained": figures.complained, "total": figures.total}
