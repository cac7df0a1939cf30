"""The click counters in the database (``store.tables.click_counts``): one row per link of
an item of a week, two numbers. Added to in one upsert per link, on SQLite and PostgreSQL
alike, so that several web processes can count into the same rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..edition.click_tokens import ClickTarget
from ..store.db import begin_write
from ..store.tables import click_counts

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite


@dataclass
class Tally:
    clicks: int = 0
    filtered: int = 0

    def add(self, other: Tally) -> None:
        self.clicks += other.clicks
        self.filtered += other.filtered


@dataclass(frozen=True)
class LinkCount:
    """One row: a link of an item of a week and its counts."""

    week: str
    item: int
    link: int
    url: str
    clicks: int
    filtered: int


def add_counts(engine: sa.Engine, counts: Mapping[ClickTarget, Tally]) -> None:
    """Add ``counts`` to the rows (made on a link's first count), in one transaction. Two
    tokens of one link with different URLs (the item edited between renders) share the row;
    it keeps the URL counted last."""
    merged: dict[tuple[str, int, int], tuple[str, Tally]] = {}
    for target, tally in counts.items():
        # One row per link in the statement: PostgreSQL refuses to update a row twice in one.
        key = _order(target)
        total = merged[key][1] if key in merged else Tally()
        total.add(tally)
        merged[key] = (target.url, total)
    rows = [{"week": week, "item": item, "link": link, "url": url,
             "clicks": tally.clicks, "filtered": tally.filtered}
            for (week, item, link), (url, tally) in sorted(merged.items())
            if tally.clicks or tally.filtered]
    if not rows:
        return
    with begin_write(engine) as conn:
        statement = _insert(conn)(click_counts)
        c, new = click_counts.c, statement.excluded
        conn.execute(statement.on_conflict_do_update(
            index_elements=["week", "item", "link"],
            set_={"clicks": c.clicks + new.clicks, "filtered": c.filtered + new.filtered,
                  "url": new.url}), rows)


def week_counts(conn: sa.Connection, week: str) -> list[LinkCount]:
    """Every counted link of ``week``, by item, then link."""
    c = click_counts.c
    rows = conn.execute(sa.select(c.week, c.item, c.link, c.url, c.clicks, c.filtered)
                        .where(c.week == week).order_by(c.item, c.link))
    return [LinkCount(*row) for row in rows]


def _order(target: ClickTarget) -> tuple[str, int, int]:
    # Rows written in one order by every process: two upserts never wait on each other's
    # locks in opposite orders (PostgreSQL would call that a deadlock).
    return (target.week, target.item, target.link)


def _insert(conn: sa.Connection) -> Callable[[sa.Table], postgresql.Insert | sqlite.Insert]:
    """The connection's dialect's INSERT, which has ON CONFLICT DO UPDATE on both."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
