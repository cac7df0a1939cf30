"""Status changes that come from the subscriber: web sign-up, confirmation, unsubscribe,
resubscribe.

This module and ``audience.subscribers`` are the only code that changes a subscriber's status.
This one keeps the rules of consent given or withdrawn by the person themselves:

* A web sign-up makes a new address (or one erased on request) ``pending`` (source ``web``,
  the time), and an unsubscribed one ``pending`` again; it never touches an active, bounced
  or complained address. Anyone can type an address, so an unconfirmed sign-up overwrites
  nothing an earlier sign-up or an unsubscribe recorded on the subscriber: its consent (IP,
  user agent, the form's wording) waits in the status history, where every sign-up is
  recorded, one that changed nothing too.
* Only a ``pending`` subscriber is confirmed; confirming makes the newest sign-up's consent the
  subscriber's record (the old one stays in the history) and lifts an erasure of the same
  address (the person asked again, and proved the mailbox is theirs).
* Unsubscribing is idempotent and records how (``one-click``, ``page``, ``mailto``), when, and
  from which IP and user agent. Resubscribing is offered only to someone who unsubscribed
  themselves, never to an address the operator, a bounce or a complaint stopped.

Every change is recorded in the status history (``audience.history``) in its own transaction.
Every function is one transaction (or runs inside the caller's) and takes the time from its
caller, an aware UTC datetime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..store.db import begin_write
from ..store.tables import consent_details, subscribers, suppressions
from .addresses import Address, email_hash
from .history import ChangeMethod, StatusChange, latest_sign_up, one_line, record, record_many
from .model import SubscriberStatus

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

SOURCE = "web"
# An unsubscribe's method as the status history names who made it: one-click and the page are
# the web app, mailto: the feedback mailbox, anything else a provider's webhook.
_VIA = {"one-click": ChangeMethod.WEB, "page": ChangeMethod.WEB,
        "mailto": ChangeMethod.MAILBOX}


class UnsubscribeMethod(StrEnum):
    ONE_CLICK = "one-click"  # RFC 8058: the mailbox provider's button
    PAGE = "page"            # the button on the unsubscribe page
    MAILTO = "mailto"        # a mail to the List-Unsubscribe mailto: address


@dataclass(frozen=True)
class Consent:
    """Where a request came from, as the consent record keeps it."""

    ip: str | None = None
    user_agent: str | None = None
    text: str | None = None  # the wording the person agreed to (sign-up only)


@dataclass(frozen=True)
class Standing:
    """What the public pages may know of a subscriber named by a signed token."""

    id: int
    email: str
    name: str | None
    status: str
    unsubscribe_method: str | None

    @property
    def may_resubscribe(self) -> bool:
        return (self.status == SubscriberStatus.UNSUBSCRIBED
                and self.unsubscribe_method in tuple(UnsubscribeMethod))


@dataclass(frozen=True)
class Change:
    """The outcome of a request: the status before and after (equal when nothing changed)."""

    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def standing(engine: sa.Engine, subscriber_id: int) -> Standing | None:
    with engine.connect() as conn:
        return _standing(conn, subscriber_id)


def _standing(conn: sa.Connection, subscriber_id: int) -> Standing | None:
    s, d = subscribers.c, consent_details.c
    query = (
        sa.select(s.id, s.email, s.name, s.status, d.unsubscribe_method)
        .select_from(subscribers.outerjoin(consent_details, d.subscriber_id == s.id))
        .where(s.id == subscriber_id)
    )
    row = conn.execute(query).first()
    return Standing(*row) if row else None


def was_erased(engine: sa.Engine, subscriber_id: int) -> bool:
    """True when a subscriber with this id existed and was erased on request: its row is gone
    but the id was handed out (ids are never reused). False for an id never handed out."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            sequence = conn.execute(
                sa.text("SELECT pg_get_serial_sequence('subscribers', 'id')")).scalar()
            last, called = conn.execute(
                sa.text(f"SELECT last_value, is_called FROM {sequence}")).one()
            top = last if called else 0
        else:
            top = conn.execute(sa.text(
                "SELECT seq FROM sqlite_sequence WHERE name = 'subscribers'")).scalar() or 0
        exists = conn.execute(sa.select(subscribers.c.id)
                              .where(subscribers.c.id == subscriber_id)).first()
    return exists is None and 0 < subscriber_id <= top


# -- sign-up ----------------------------------------------------------------------------------


def sign_up(conn: sa.Connection, address: Address, name: str | None, consent: Consent,
            now: datetime, *, method: ChangeMethod = ChangeMethod.WEB) -> int:
    """Within the caller's write transaction: record a web sign-up; return the subscriber's id
    (whatever its status: the caller queues a confirmation for every sign-up, and the outbox
    decides whether one is sent).

    New, or erased on request: a pending subscriber. Pending or unsubscribed: pending (with
    the name given, if any, for the confirmation's greeting), the source, consent and
    unsubscribe recorded on the row left as they are until the person confirms. Active,
    bounced or complained: nothing changes. The sign-up's consent goes to the status history
    in every case. Whatever the standing the work is the same (a read, one write of the
    subscriber row that changes nothing for an active or stopped one, the history row), so
    neither the answer nor its time tells the standings apart.
    """
    s = subscribers.c
    row = conn.execute(sa.select(s.id, s.status).where(s.email_key == address.key)
                       .with_for_update()).first()
    if row is None:
        # New, or erased on request: the hash in suppressions stays until the person confirms.
        before = None
        values = dict(status=SubscriberStatus.PENDING, source=SOURCE, consented_at=now,
                      email=address.email, email_key=address.key, name=name or address.name,
                      attributes={}, created_at=now, updated_at=now)
        inserted = conn.execute(subscribers.insert().values(values)).inserted_primary_key
        assert inserted is not None  # an INSERT of one row always has its key
        subscriber_id: int = inserted[0]
    else:
        subscriber_id, before = row
        values = dict(status=SubscriberStatus.PENDING, updated_at=now)
        if name:
            values["name"] = name
        # Run for every standing; an active or stopped subscriber's row matches no row here.
        conn.execute(
            subscribers.update()
            .where(s.id == subscriber_id,
                   s.status.in_((SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED)))
            .values(values))
    after = SubscriberStatus.PENDING if before in _SIGNS_UP else before
    # Every sign-up is recorded, one that changed nothing too: what someone asked for is kept,
    # and the work stays the same whatever the standing.
    record(conn, StatusChange(subscriber_id, now, before, after, method,
                              detail=_sign_up_detail(before), ip=consent.ip,
                              user_agent=consent.user_agent, consent_text=consent.text))
    return subscriber_id


_SIGNS_UP = (None, SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED)


def _sign_up_detail(before: str | None) -> str:
    if before is None:
        return "signed up"
    if before in _SIGNS_UP:
        return f"signed up again (was {before})"
    return f"signed up while {before}: nothing changed"


def confirm(engine: sa.Engine, subscriber_id: int, now: datetime) -> Change | None:
    """Double opt-in: a pending subscriber becomes active, with its newest sign-up's consent
    as its record. None when there is no subscriber."""
    s = subscribers.c
    with begin_write(engine) as conn:
        row = conn.execute(sa.select(s.status, s.email_key).where(s.id == subscriber_id)
                           .with_for_update()).first()
        if row is None:
            return None
        if row.status != SubscriberStatus.PENDING:
            return Change(row.status, row.status)
        values = dict(status=SubscriberStatus.ACTIVE, confirmed_at=now, updated_at=now)
        signed = latest_sign_up(conn, subscriber_id)
        if signed is not None:
            # What the person confirmed replaces the earlier record; the history keeps that.
            values.update(source=SOURCE, consented_at=signed.at, unsubscribed_at=None,
                          unsubscribe_reason=None)
            _save_details(conn, subscriber_id, now, consent_ip=signed.ip,
                          consent_user_agent=signed.user_agent,
                          consent_text=signed.consent_text, unsubscribe_method=None,
                          unsubscribe_ip=None, unsubscribe_user_agent=None)
        conn.execute(subscribers.update().where(s.id == subscriber_id).values(values))
        record(conn, StatusChange(subscriber_id, now, SubscriberStatus.PENDING,
                                  SubscriberStatus.ACTIVE, ChangeMethod.WEB,
                                  detail="confirmed with the link in the confirmation mail"))
        conn.execute(suppressions.delete()
                     .where(suppressions.c.email_hash == email_hash(row.email_key)))
    return Change(SubscriberStatus.PENDING, SubscriberStatus.ACTIVE)


# -- unsubscribe and resubscribe ------------------------------------------------------------


@dataclass(frozen=True)
class Unsubscribe:
    """One unsubscribe request, as ``unsubscribe_many`` takes it."""

    subscriber_id: int
    method: UnsubscribeMethod | str  # or the provider whose webhook reported it ("postmark")
    consent: Consent
    now: datetime


def unsubscribe(engine: sa.Engine, subscriber_id: int, method: UnsubscribeMethod | str,
                consent: Consent, now: datetime) -> Change | None:
    """Stop a pending or active subscriber; a stopped one stays as it is. None: no subscriber."""
    return unsubscribe_many(engine, [Unsubscribe(subscriber_id, method, consent, now)])[0]


def unsubscribe_many(engine: sa.Engine, requests: list[Unsubscribe]) -> list[Change | None]:
    """Several unsubscribes in one transaction (one commit, one fsync), in a few statements
    whatever their number: what a burst of one-click requests needs. Each gets exactly the
    outcome ``unsubscribe`` would give it alone, in order (the same id twice: the second is
    "already unsubscribed"); a batch's time is its latest request's."""
    stopped: set[int] = set()
    with begin_write(engine) as conn:
        for method in dict.fromkeys(r.method for r in requests):
            stopped |= _stop(conn, [r for r in requests if r.method == method], stopped)
        others = {r.subscriber_id for r in requests} - stopped
        s = subscribers.c
        status = dict(conn.execute(sa.select(s.id, s.status).where(s.id.in_(others))).all()
                      ) if others else {}
    return _outcomes(requests, stopped, status)


def _stop(conn: sa.Connection, requests: list[Unsubscribe], done: set[int]) -> set[int]:
    """For requests of one method: one read, one UPDATE, one upsert of their details, one
    executemany of their history. The ids stopped."""
    s = subscribers.c
    method, now = requests[0].method, max(r.now for r in requests)
    ids = [i for i in dict.fromkeys(r.subscriber_id for r in requests) if i not in done]
    receiving = (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)
    # Locked in id order, as every bulk path locks them: two batches never wait on each other
    # in a circle.
    before = dict(conn.execute(sa.select(s.id, s.status)
                               .where(s.id.in_(ids), s.status.in_(receiving))
                               .order_by(s.id).with_for_update()).all())
    reason = f"unsubscribed ({method})"
    changed = set(conn.execute(
        subscribers.update()
        .where(s.id.in_(list(before)), s.status.in_(receiving))
        .values(status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=now,
                unsubscribe_reason=reason, updated_at=now)
        .returning(s.id)).scalars()) if before else set()
    first: dict[int, Unsubscribe] = {}
    for r in requests:
        if r.subscriber_id in changed:
            first.setdefault(r.subscriber_id, r)
    _save_many(conn, [dict(subscriber_id=r.subscriber_id, unsubscribe_method=str(method),
                           unsubscribe_ip=r.consent.ip,
                           unsubscribe_user_agent=_detail(r.consent.user_agent), updated_at=now)
                      for r in first.values()])
    via = _VIA.get(str(method), ChangeMethod.WEBHOOK)
    record_many(conn, [StatusChange(r.subscriber_id, now, before[r.subscriber_id],
                                    SubscriberStatus.UNSUBSCRIBED, via, detail=reason,
                                    ip=r.consent.ip, user_agent=r.consent.user_agent)
                       for r in first.values()])
    return changed


def _outcomes(requests: list[Unsubscribe], stopped: set[int],
              status: dict[int, str]) -> list[Change | None]:
    out: list[Change | None] = []
    told: set[int] = set()
    for r in requests:
        if r.subscriber_id in stopped and r.subscriber_id not in told:
            told.add(r.subscriber_id)
            # Pending or active before: both mean "was receiving (or about to)".
            out.append(Change(SubscriberStatus.ACTIVE, SubscriberStatus.UNSUBSCRIBED))
        elif r.subscriber_id in stopped:
            out.append(Change(SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.UNSUBSCRIBED))
        elif r.subscriber_id in status:
            out.append(Change(status[r.subscriber_id], status[r.subscriber_id]))
        else:
            out.append(None)
    return out


def resubscribe(engine: sa.Engine, subscriber_id: int, consent: Consent,
                now: datetime) -> Change | None:
    """Undo the subscriber's own unsubscribe, from the page their mail's link opened."""
    s = subscribers.c
    with begin_write(engine) as conn:
        current = _standing(conn, subscriber_id)
        if current is None:
            return None
        if not current.may_resubscribe:
            return Change(current.status, current.status)
        conn.execute(subscribers.update().where(s.id == subscriber_id).values(
            status=SubscriberStatus.ACTIVE, source=SOURCE, consented_at=now, confirmed_at=now,
            unsubscribed_at=None, unsubscribe_reason=None, updated_at=now))
        _save_details(conn, subscriber_id, now, consent_ip=consent.ip,
                      consent_user_agent=_detail(consent.user_agent),
                      consent_text=_detail(consent.text), unsubscribe_method=None,
                      unsubscribe_ip=None, unsubscribe_user_agent=None)
        record(conn, StatusChange(subscriber_id, now, SubscriberStatus.UNSUBSCRIBED,
                                  SubscriberStatus.ACTIVE, ChangeMethod.WEB,
                                  detail="resubscribed on the unsubscribe page", ip=consent.ip,
                                  user_agent=consent.user_agent, consent_text=consent.text))
    return Change(SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.ACTIVE)


# -- the consent details row ------------------------------------------------------------------


def _save_details(conn: sa.Connection, subscriber_id: int, now: datetime,
                  **values: str | None) -> None:
    """Insert or update the subscriber's consent_details row (one statement on both backends)."""
    changed = {**values, "updated_at": now}
    statement = _insert(conn)(consent_details).values(subscriber_id=subscriber_id, **changed)
    conn.execute(statement.on_conflict_do_update(index_elements=["subscriber_id"], set_=changed))


def _save_many(conn: sa.Connection, rows: list[dict[str, object]]) -> None:
    """``_save_details`` for many rows at once (one executemany)."""
    if not rows:
        return
    insert = _insert(conn)
    statement = insert(consent_details)
    columns = [k for k in rows[0] if k != "subscriber_id"]
    conn.execute(statement.on_conflict_do_update(
        index_elements=["subscriber_id"],
        set_={k: getattr(statement.excluded, k) for k in columns}), rows)


def _insert(conn: sa.Connection) -> Callable[[sa.Table], postgresql.Insert | sqlite.Insert]:
    """The connection's dialect's INSERT, which has ON CONFLICT DO UPDATE on both."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _detail(value: str | None) -> str | None:
    """A user agent or wording as stored: one line, bounded (it is shown to the operator)."""
    return one_line(value)
