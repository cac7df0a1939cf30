"""The clicks section: per item of the week, its readers' clicks, what was filtered (HEAD
requests, prefetches, scanners, bursts) and its most clicked links, read from the counters
``clicks.store`` keeps, so that the figures are the table's. Every item of the edition is
listed, with zeros until one of its links is fetched."""

from __future__ import annotations

import logging
from collections import defaultdict

import sqlalchemy as sa

from ..clicks.store import LinkCount, week_counts
from ..config import Config
from ..edition.content import load_edition
from ..errors import ContentError
from .model import NO_CLICKS, Clicks, ItemClicks, LinkClicks

log = logging.getLogger("newsletter.report")

TOP_LINKS = 3


def week_clicks(conn: sa.Connection, config: Config, week: str) -> Clicks:
    """The section for ``week``: off (a note) when click_counts is off and nothing was ever
    counted for the week."""
    rows = week_counts(conn, week)
    if not rows and not config.click_counts:
        return Clicks()
    by_item: dict[int, list[LinkCount]] = defaultdict(list)
    for row in rows:
        by_item[row.item].append(row)
    titles = _titles(config, week)
    items = tuple(_item(number, titles.get(number, f"item {number}"), by_item.get(number, []))
                  for number in sorted(set(titles) | set(by_item)))
    return Clicks(enabled=True, note="" if rows else NO_CLICKS, items=items)


def _item(number: int, title: str, rows: list[LinkCount]) -> ItemClicks:
    top = sorted(rows, key=lambda r: (-r.clicks, -r.filtered, r.link))[:TOP_LINKS]
    return ItemClicks(item=number, title=title, clicks=sum(r.clicks for r in rows),
                      filtered=sum(r.filtered for r in rows),
                      links=tuple(LinkClicks(r.link, r.url, r.clicks, r.filtered) for r in top))


def _titles(config: Config, week: str) -> dict[int, str]:
    """The items' titles by number, from the week's folder as it is now; none when the folder
    is gone or unreadable (the report still shows the counts, by number)."""
    try:
        edition = load_edition(config.items_dir, week)
    except ContentError as exc:
        log.info("clicks: no item titles for %s: %s", week, exc)
        return {}
    return {number: item.title for number, item in enumerate(edition.items, 1)}
