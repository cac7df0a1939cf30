"""Every change of a subscriber's status, each rule stated once, whoever asks for it.

Creating a subscriber is its creator's (``subscribers.add`` for the CLI, ``signup.sign_up`` for
the web and the API, ``transfer`` for a CSV import); everything that happens to it afterwards
is one of the verbs here: ``sign_up`` again, ``confirm``, ``unsubscribe`` (one, many, or by
address), ``resubscribe``, ``bounce``, ``complain``. Each takes the method that made the change
(``history.ChangeMethod``: web, api, cli, webhook, mailbox, send) and writes it to the status
history (``audience.history``) in the change's own transaction. The rules:

* A sign-up makes a pending or unsubscribed subscriber ``pending`` again and never touches an
  active, bounced or complained one. Anyone can type an address, so an unconfirmed sign-up
  overwrites nothing an earlier sign-up or an unsubscribe recorded on the subscriber: its
  consent (IP, user agent, the form's wording) waits in the status history, where every
  sign-up is recorded, one that changed nothing too.
* Only a ``pending`` subscriber is confirmed. Confirming makes the newest sign-up's consent the
  subscriber's record (the old one stays in the history) and lifts an erasure of the same
  address (its hash in ``suppressions``): the person asked again and proved the mailbox is
  theirs.
* Stopping (unsubscribe, bounce, complaint) moves a pending or active subscriber only and is
  idempotent: a stopped subscriber stays as it is, whatever stops it next.
* An unsubscribe the person made records how (``one-click``, ``page``, ``mailto``, or the
  provider whose webhook reported it), when, and from which IP and user agent. Resubscribing
  is offered only to someone who unsubscribed themselves, never to an address the operator, a
  bounce or a complaint stopped.

Every function is one transaction, or runs inside the caller's where its name says so (a
``conn`` first); every time is an aware UTC datetime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from ..clock import utc_now
from ..errors import SubscriberError
from ..store.db import begin_write
from ..store.tables import consent_details, subscribers, suppressions
from . import consent_details as details
from .addresses import Address, email_hash
from .history import ChangeMethod, StatusChange, latest_sign_up, record, record_many
from .lookup import describe_address, parse_or_raise, to_subscriber
from .model import Subscriber, SubscriberStatus

SOURCE = "web"  # a subscriber's source once its own consent (a sign-up, a resubscribe) is on record
# The statuses a stop moves from: receiving mail, or about to.
_RECEIVING = (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)
# The statuses a sign-up moves to pending; it leaves every other as it is.
_SIGNS_UP = (SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED)


class UnsubscribeMethod(StrEnum):
    """How a person unsubscribed themselves."""

    ONE_CLICK = "one-click"  # RFC 8058: the mailbox provider's button
    PAGE = "page"            # the button on the unsubscribe page
    MAILTO = "mailto"        # a mail to the List-Unsubscribe mailto: address


# An unsubscribe's method as the status history names who made it: one-click and the page are
# the web app, mailto: the feedback mailbox, anything else a provider's webhook.
_VIA: dict[str, ChangeMethod] = {UnsubscribeMethod.ONE_CLICK: ChangeMethod.WEB,
                                 UnsubscribeMethod.PAGE: ChangeMethod.WEB,
                                 UnsubscribeMethod.MAILTO: ChangeMethod.MAILBOX}


@dataclass(frozen=True)
class Consent:
    """Where a request came from, as the consent record keeps it."""

    ip: str | None = None
    user_agent: str | None = None
    text: str | None = None  # the wording the person agreed to (sign-up only)


@dataclass(frozen=True)
class Change:
    """The outcome of a request: the status before and after (equal when nothing changed)."""

    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True)
class Unsubscribe:
    """One unsubscribe request, as ``unsubscribe_many`` takes it."""

    subscriber_id: int
    method: UnsubscribeMethod | str  # or the provider whose webhook reported it ("postmark")
    consent: Consent
    now: datetime


def may_resubscribe(status: str, unsubscribe_method: str | None) -> bool:
    """Whether a subscriber may undo its unsubscribe: only one it made itself."""
    return (status == SubscriberStatus.UNSUBSCRIBED
            and unsubscribe_method in tuple(UnsubscribeMethod))


# -- sign-up and confirmation -----------------------------------------------------------------


def sign_up(conn: sa.Connection, subscriber_id: int, before: str | None, name: str | None,
            consent: Consent, now: datetime, *, method: ChangeMethod) -> None:
    """Within the caller's write transaction, the subscriber's row locked: a sign-up of a
    subscriber whose status was ``before`` (None: the caller has just added it, pending).

    Pending or unsubscribed: pending, with the name given (if any) for the confirmation's
    greeting; the source, consent and unsubscribe on record left as they are until the person
    confirms. Active, bounced or complained: nothing changes. The sign-up's consent goes to the
    status history in every case. Whatever the standing the work is the same (one write of the
    subscriber row, which changes nothing for an active or stopped one, and the history row),
    so neither the answer nor its time tells the standings apart.
    """
    after: str = SubscriberStatus.PENDING
    if before is not None:
        s = subscribers.c
        values: dict[str, object] = dict(status=SubscriberStatus.PENDING, updated_at=now)
        if name:
            values["name"] = name
        # Run for every standing; an active or stopped subscriber's row matches no row here.
        conn.execute(subscribers.update()
                     .where(s.id == subscriber_id, s.status.in_(_SIGNS_UP))
                     .values(values))
        if before not in _SIGNS_UP:
            after = before
    record(conn, StatusChange(subscriber_id, now, before, after, method,
                              detail=_sign_up_detail(before), ip=consent.ip,
                              user_agent=consent.user_agent, consent_text=consent.text))


def _sign_up_detail(before: str | None) -> str:
    if before is None:
        return "signed up"
    if before in _SIGNS_UP:
        return f"signed up again (was {before})"
    return f"signed up while {before}: nothing changed"


_CONFIRMED = {ChangeMethod.WEB: "confirmed with the link in the confirmation mail"}


def confirm(engine: sa.Engine, subscriber_id: int, now: datetime, *,
            method: ChangeMethod = ChangeMethod.WEB,
            then: Callable[[sa.Connection], None] | None = None) -> Change | None:
    """Double opt-in: a pending subscriber becomes active, with its newest sign-up's consent
    as its record, and an erasure of its address is lifted. None when there is no
    subscriber. ``then`` runs within the same transaction, only when the subscriber became
    active (the outbox queues its welcome mail there)."""
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
            details.save(conn, subscriber_id, now, consent_ip=signed.ip,
                         consent_user_agent=signed.user_agent,
                         consent_text=signed.consent_text, unsubscribe_method=None,
                         unsubscribe_ip=None, unsubscribe_user_agent=None)
        conn.execute(subscribers.update().where(s.id == subscriber_id).values(values))
        record(conn, StatusChange(subscriber_id, now, SubscriberStatus.PENDING,
                                  SubscriberStatus.ACTIVE, method,
                                  detail=_CONFIRMED.get(method, f"confirmed ({method})")))
        conn.execute(suppressions.delete()
                     .where(suppressions.c.email_hash == email_hash(row.email_key)))
        if then is not None:
            then(conn)
    return Change(SubscriberStatus.PENDING, SubscriberStatus.ACTIVE)


# -- stopping: unsubscribe, bounce, complaint -------------------------------------------------


def unsubscribe(engine: sa.Engine, subscriber_id: int, method: UnsubscribeMethod | str,
                consent: Consent, now: datetime) -> Change | None:
    """The person unsubscribes: stop a pending or active subscriber; a stopped one stays as it
    is. None: no subscriber."""
    return unsubscribe_many(engine, [Unsubscribe(subscriber_id, method, consent, now)])[0]


def unsubscribe_many(engine: sa.Engine, requests: list[Unsubscribe]) -> list[Change | None]:
    """Several unsubscribes in one transaction (one commit, one fsync), in a few statements
    whatever their number: what a burst of one-click requests needs. Each gets exactly the
    outcome ``unsubscribe`` would give it alone, in order (the same id twice: the second is
    "already unsubscribed"); a batch's time is its latest request's."""
    stopped: set[int] = set()
    with begin_write(engine) as conn:
        for method in dict.fromkeys(r.method for r in requests):
            stopped |= _unsubscribe_by(conn, [r for r in requests if r.method == method],
                                       stopped)
        others = {r.subscriber_id for r in requests} - stopped
        s = subscribers.c
        status = dict(conn.execute(sa.select(s.id, s.status).where(s.id.in_(others))).all()
                      ) if others else {}
    return _outcomes(requests, stopped, status)


def _unsubscribe_by(conn: sa.Connection, requests: list[Unsubscribe],
                    done: set[int]) -> set[int]:
    """For requests of one method: the stop, then one upsert of their unsubscribe records.
    The ids stopped."""
    method, now = requests[0].method, max(r.now for r in requests)
    first: dict[int, Unsubscribe] = {}
    for r in requests:
        if r.subscriber_id not in done:
            first.setdefault(r.subscriber_id, r)
    stopped = _stop(conn, first, SubscriberStatus.UNSUBSCRIBED, f"unsubscribed ({method})",
                    _VIA.get(str(method), ChangeMethod.WEBHOOK), now,
                    {i: r.consent for i, r in first.items()})
    details.save_many(conn, [dict(subscriber_id=i, unsubscribe_method=str(method),
                                  unsubscribe_ip=first[i].consent.ip,
                                  unsubscribe_user_agent=details.stored(
                                      first[i].consent.user_agent),
                                  updated_at=now)
                             for i in stopped])
    return set(stopped)


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


def unsubscribe_address(engine: sa.Engine, email: str, reason: str = "unsubscribed via CLI",
                        *, method: ChangeMethod = ChangeMethod.CLI) -> Subscriber:
    """The operator unsubscribes an address; idempotent. Raise SubscriberError if it is not
    on the list."""
    address = parse_or_raise(email)
    sub = _stop_address(engine, address, SubscriberStatus.UNSUBSCRIBED, reason, method)
    if sub is None:
        raise SubscriberError(describe_address(engine, address))
    return sub


def bounce(conn: sa.Connection, ids: list[int], reason: str, *, method: ChangeMethod) -> None:
    """Within the caller's transaction (the delivery ledger's, or the event log's): these
    addresses bounced."""
    _stop(conn, ids, SubscriberStatus.BOUNCED, reason, method, utc_now())


def complain(engine: sa.Engine, email: str, reason: str, *,
             method: ChangeMethod = ChangeMethod.CLI) -> Subscriber | None:
    """A spam complaint reported by the provider: never send to the address again. None when
    it is not on the list."""
    return _stop_address(engine, parse_or_raise(email), SubscriberStatus.COMPLAINED, reason,
                         method)


def _stop_address(engine: sa.Engine, address: Address, to: SubscriberStatus, reason: str,
                  method: ChangeMethod) -> Subscriber | None:
    """``_stop`` for the subscriber with this address, in a transaction of its own; the
    subscriber as it is after, or None when the address is not on the list."""
    s = subscribers.c
    with begin_write(engine) as conn:
        found = conn.execute(sa.select(s.id).where(s.email_key == address.key)).scalar()
        if found is None:
            return None
        _stop(conn, [found], to, reason, method, utc_now())
        row = conn.execute(sa.select(subscribers).where(s.id == found)).one()
    return to_subscriber(row)


def _stop(conn: sa.Connection, ids: Iterable[int], to: SubscriberStatus, reason: str,
          method: ChangeMethod, now: datetime,
          consents: Mapping[int, Consent] | None = None) -> dict[int, str]:
    """Within the caller's transaction: move those of ``ids`` that are pending or active to
    ``to``, each change in the history with its request's IP and user agent (``consents``).
    One read, one UPDATE, one executemany of the history, however many; the ids moved, in the
    order given, with their status before."""
    s = subscribers.c
    ids = list(dict.fromkeys(ids))
    # Locked in id order, as every bulk path locks them: two batches never wait on each other
    # in a circle.
    receiving = dict(conn.execute(sa.select(s.id, s.status)
                                  .where(s.id.in_(ids), s.status.in_(_RECEIVING))
                                  .order_by(s.id).with_for_update()).all())
    if not receiving:
        return {}
    conn.execute(subscribers.update()
                 .where(s.id.in_(list(receiving)), s.status.in_(_RECEIVING))
                 .values(status=to, unsubscribed_at=now, unsubscribe_reason=reason,
                         updated_at=now))
    before = {i: receiving[i] for i in ids if i in receiving}
    asked = consents or {}
    nobody = Consent()
    record_many(conn, [StatusChange(i, now, was, to, method, detail=reason,
                                    ip=asked.get(i, nobody).ip,
                                    user_agent=asked.get(i, nobody).user_agent)
                       for i, was in before.items()])
    return before


# -- resubscribe ------------------------------------------------------------------------------


def resubscribe(engine: sa.Engine, subscriber_id: int, consent: Consent, now: datetime, *,
                method: ChangeMethod = ChangeMethod.WEB) -> Change | None:
    """Undo the subscriber's own unsubscribe, from the page their mail's link opened. None:
    no subscriber."""
    s, d = subscribers.c, consent_details.c
    with begin_write(engine) as conn:
        current = conn.execute(
            sa.select(s.status, d.unsubscribe_method)
            .select_from(subscribers.outerjoin(consent_details, d.subscriber_id == s.id))
            .where(s.id == subscriber_id)).first()
        if current is None:
            return None
        if not may_resubscribe(current.status, current.unsubscribe_method):
            return Change(current.status, current.status)
        conn.execute(subscribers.update().where(s.id == subscriber_id).values(
            status=SubscriberStatus.ACTIVE, source=SOURCE, consented_at=now, confirmed_at=now,
            unsubscribed_at=None, unsubscribe_reason=None, updated_at=now))
        details.save(conn, subscriber_id, now, consent_ip=consent.ip,
                     consent_user_agent=details.stored(consent.user_agent),
                     consent_text=details.stored(consent.text), unsubscribe_method=None,
                     unsubscribe_ip=None, unsubscribe_user_agent=None)
        record(conn, StatusChange(subscriber_id, now, SubscriberStatus.UNSUBSCRIBED,
                                  SubscriberStatus.ACTIVE, method,
                                  detail="resubscribed on the unsubscribe page", ip=consent.ip,
                                  user_agent=consent.user_agent, consent_text=consent.text))
    return Change(SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.ACTIVE)
