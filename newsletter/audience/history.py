"""The subscriber's status history: one row per change, written in the change's own
transaction, never updated (``status_changes``).

``audience.changes`` (every change of a status, and every sign-up), ``audience.profile`` (a
reader's change of name: a row whose status stays as it was), ``audience.subscribers``
(an address the operator adds) and the import (through ``audience.bulk``) are the only
writers, through ``record`` (one change), ``record_many`` (a bulk path's changes
in one executemany) and ``record_selected`` (an import's new subscribers, in SQL). A row says who
changed the status (the method), from what to what, when, and why in a few words; the words
never hold an address, because they outlive the reasons stored on the subscriber row, which
the next change overwrites. A change made by a request keeps its IP and user agent, and a
sign-up the wording the person agreed to: that consent waits here until the person confirms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from ..store.tables import UTCDateTime, status_changes
from ..text import CONTROL_CHARS

MAX_DETAIL = 300   # characters kept of a change's detail
MAX_TEXT = 512     # characters kept of a user agent or a form's wording
_ADDRESS = re.compile(r"\S*@\S*")  # an address, with whatever brackets or quotes cling to it


class ChangeMethod(StrEnum):
    """Who or what changed a status."""

    WEB = "web"          # a page of the web app: the sign-up form, a confirm or unsubscribe link
    API = "api"          # the JSON sign-up API other sites' scripts call
    CLI = "cli"          # the operator's command
    WEBHOOK = "webhook"  # a provider's event
    MAILBOX = "mailbox"  # the feedback mailbox: a bounce, a complaint, a mailto: unsubscribe
    IMPORT = "import"    # a CSV import
    SEND = "send"        # the provider's answer to a send (the ledger)
    UNKNOWN = "unknown"  # before the history began (migration 0007)


@dataclass(frozen=True)
class StatusChange:
    subscriber_id: int
    at: datetime
    from_status: str | None  # None: the subscriber's first row
    to_status: str
    method: ChangeMethod
    detail: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    consent_text: str | None = None  # a sign-up's or resubscribe's wording


def record(conn: sa.Connection, change: StatusChange) -> None:
    """Within the change's transaction: its row."""
    conn.execute(status_changes.insert().values(_values(change)))


def record_many(conn: sa.Connection, changes: Iterable[StatusChange]) -> None:
    """Within the changes' transaction: their rows, in one executemany."""
    rows = [_values(c) for c in changes]
    if rows:
        conn.execute(status_changes.insert(), rows)


def record_selected(conn: sa.Connection, query: sa.Select[*tuple[Any, ...]], at: datetime,
                    method: ChangeMethod, detail: str) -> None:
    """Within the transaction that added them: a first row (no status before) for each
    subscriber ``query`` selects as (id, status), in one INSERT ... SELECT however many."""
    chosen = query.subquery()
    source = sa.select(chosen.c.id, sa.literal(at, UTCDateTime()), sa.null(), chosen.c.status,
                       sa.literal(str(ChangeMethod(method))), sa.literal(without_address(detail)))
    conn.execute(status_changes.insert().from_select(
        ["subscriber_id", "at", "from_status", "to_status", "method", "detail"], source))


def latest_sign_up(conn: sa.Connection, subscriber_id: int) -> sa.Row[*tuple[Any, ...]] | None:
    """The subscriber's newest sign-up on the web or through the API: the consent a
    confirmation makes good."""
    h = status_changes.c
    return conn.execute(
        sa.select(h.at, h.ip, h.user_agent, h.consent_text)
        .where(h.subscriber_id == subscriber_id, h.to_status == "pending",
               h.method.in_((ChangeMethod.WEB, ChangeMethod.API)),
               # a sign-up's row, not a pending reader's change of name (audience.profile)
               h.detail.like("signed up%"))
        .order_by(h.id.desc()).limit(1)
    ).first()


def one_line(value: str | None, limit: int = MAX_TEXT) -> str | None:
    """A user agent, wording or detail as stored: one line, bounded (the operator reads it)."""
    if not value:
        return None
    return CONTROL_CHARS.sub(" ", value).strip()[:limit] or None


def without_address(value: str | None) -> str | None:
    """A detail as stored: any address in it (a provider's bounce text often quotes the
    recipient) replaced, one line, bounded."""
    if not value:
        return None
    return one_line(_ADDRESS.sub("(address)", value), MAX_DETAIL)


def _values(change: StatusChange) -> dict[str, Any]:
    return dict(
        subscriber_id=change.subscriber_id, at=change.at, from_status=change.from_status,
        to_status=change.to_status,
        method=str(ChangeMethod(change.method)),  # refuses a method not in the list
        detail=without_address(change.detail), ip=change.ip,
        user_agent=one_line(change.user_agent), consent_text=one_line(change.consent_text))
