"""What the masthead says about an edition: its date and its issue number.

The date is the Monday of the edition's ISO week: an edition belongs to its week whatever day
the schedule sends it, and the mail, the preview and the archive page then all show the same
date without knowing the schedule.

The issue number counts weeks: ``first_week`` is issue ``issue_start``, each later week one
more. It is a function of the week alone, never of the ledger, so a week's number is known
before it is sent (in the preview, in ``worker --next``), is the same in the archive years
later, and cannot change under a send that is resuming (whose content must not change). A
week without an edition leaves its number unused, as a magazine's skipped issue would. When
``first_week`` is not configured, the earliest week folder under ``items_dir`` is the first.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

_WEEK = re.compile(r"^(\d{4})-W(\d{2})\Z", re.ASCII)
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def week_monday(week: str) -> date:
    """The Monday of an ISO week such as ``2026-W47``."""
    match = _WEEK.match(week)
    if not match:
        raise ValueError(f"not an ISO week: {week!r}")
    return date.fromisocalendar(int(match[1]), int(match[2]), 1)


def date_text(day: date) -> str:
    """``16 November 2026``: the same in every locale the process runs in."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def first_week_in(items_dir: Path) -> str | None:
    """The earliest week that has a folder under ``items_dir``."""
    try:
        weeks = [p.name for p in Path(items_dir).iterdir() if _WEEK.match(p.name) and p.is_dir()]
    except OSError:
        return None
    return min(weeks) if weeks else None


def issue_number(week: str, first_week: str | None, issue_start: int) -> int | None:
    """The issue number of ``week``; None before the first week (or without one)."""
    if not first_week:
        return None
    weeks = (week_monday(week) - week_monday(first_week)).days // 7
    return issue_start + weeks if weeks >= 0 else None
