"""Which week ``newsletter new`` writes, and whether a week has been sent.

The default is the week of the next scheduled send (``schedule`` in ``timezone``) or, when
that one already has a folder or a send, the first week after it that has neither: on the
Tuesday after Monday's send, ``new`` prepares next week's edition.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from ..config import Config
from ..edition.content import parse_week
from ..edition.masthead import week_monday
from ..errors import ContentError

MAX_WEEKS_AHEAD = 520  # ten years of folders: far more than anyone keeps ahead


def week_after(week: str) -> str:
    year, number, _ = (week_monday(week) + timedelta(days=7)).isocalendar()
    return f"{year}-W{number:02d}"


def next_free_week(items_dir: Path, start: str, sent: Callable[[str], bool]) -> str:
    """``start`` or the first week after it with no folder and no send."""
    week = start
    for _ in range(MAX_WEEKS_AHEAD):
        if not (Path(items_dir) / week).exists() and not sent(week):
            return week
        week = week_after(week)
    return week


def next_send_week(config: Config, now: datetime | None = None) -> str:
    """The week the next scheduled run sends."""
    from ..worker.schedule import edition_week, next_run_times

    [first] = next_run_times(config, 1, now)
    return edition_week(first, config.timezone)


def target_week(config: Config, asked: str | None, from_data: str, sent: Callable[[str], bool],
                now: datetime | None = None) -> str:
    """The week to write: ``--week``, else the data's own, else the next free one. Given
    both, they must agree."""
    asked = parse_week(asked) if asked else ""
    from_data = parse_week(from_data) if from_data else ""
    if asked and from_data and asked != from_data:
        raise ContentError(f"--week {asked} and the JSON's week {from_data} differ; "
                           "give one of them")
    return asked or from_data or next_free_week(config.items_dir,
                                                next_send_week(config, now), sent)


def sent_checker(config: Config) -> Callable[[str], bool]:
    """``sent(week)``: whether the ledger has a send of the week, in any state. A SQLite
    database that does not exist yet has none (and is not created to find that out)."""
    url = config.database_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        path = Path(url[len("sqlite:///"):].split("?", 1)[0])
        if not path.exists():
            return lambda week: False
    from ..delivery.ledger.sends import sends_of_week
    from ..store.db import connect

    engine = connect(url)
    return lambda week: bool(sends_of_week(engine, week))
