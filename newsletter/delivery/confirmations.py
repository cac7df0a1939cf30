"""The confirmation outbox: double opt-in mails written with the sign-up, sent from there.

A web sign-up and its confirmation mail are one transaction (``request_confirmation``): the
pending subscriber and an outbox row commit together or not at all, so a mail can never be
lost between the two. Every sign-up writes its row, whatever the address's standing (new,
pending, active, unsubscribed, bounced, erased), so that a sign-up does the same work, and
takes the same time, for an address on the list as for a stranger's; the sender decides what
each row gets. ``drain_outbox`` (the web process runs it in the background, the worker
calls it too) claims due rows, renders ``confirm.mjml.j2``/``confirm.txt.j2`` once per drain
through the edition's render path, and sends through the configured provider, outside the
weekly ledger. A failure is retried with a doubling delay; a row claimed by a process that
died is taken again once its lease runs out. Delivery is at least once: a crash between the
provider's answer and the commit can send a confirmation twice, never zero times.

The sender mails only a subscriber who is pending when the row is claimed (an active,
stopped or confirmed one gets nothing, as a sign-up of theirs always did), and keeps the
per-address cooldown, whose memory is the outbox: a pending address is mailed again only when
the last confirmation mailed to it is older than ``COOLDOWN``, and at most ``DAILY_LIMIT`` a
day, so a sign-up form cannot be used to mail-bomb a stranger. A row it will not mail is
``cancelled``, with why in ``error``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..audience import changes, signup
from ..audience import subscribers as subscribers_
from ..audience.addresses import Address
from ..audience.history import ChangeMethod
from ..audience.model import Subscriber, SubscriberStatus
from ..audience.recipient import Recipient
from ..clock import utc_now
from ..config import Config
from ..errors import NewsletterError, SubscriberError
from ..message.model import Personalized
from ..providers import make_transport
from ..providers.base import BatchError, OutcomeKind, Transport, TransportError
from ..store.db import begin_write
from ..store.tables import confirmations, sends, subscribers
from .outbox_mails import Due, OutboxMail
from .states import ConfirmationStatus, OutboxKind

log = logging.getLogger("newsletter.confirmations")

COOLDOWN = timedelta(minutes=10)
DAILY_LIMIT = 3
LEASE = timedelta(minutes=5)    # a claimed row is taken again after this (its sender died)
MAX_ATTEMPTS = 8
# Every sign-up writes a row, whoever signs up (so that it takes the same time for all): the
# rows that mailed nobody are kept a day, for the log, then deleted, so that a flood of
# sign-ups for addresses already on the list does not grow the outbox for ever.
CANCELLED_KEPT = timedelta(days=1)
FIRST_RETRY = 30.0              # seconds, doubling, at most MAX_RETRY
MAX_RETRY = 3600.0
# The statuses a subscriber must have for each kind of mail (None: any; a notice or the data
# link is the person's whatever their standing), and the kinds a person could ask for again
# and again, for someone else's address: those keep the cooldown.
RECEIVES: dict[OutboxKind, tuple[str, ...] | None] = {
    OutboxKind.CONFIRM: (SubscriberStatus.PENDING,),
    OutboxKind.WELCOME: (SubscriberStatus.ACTIVE,),
    OutboxKind.ADDRESS_CONFIRM: (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING),
    OutboxKind.ADDRESS_NOTICE: None,
    OutboxKind.DATA_LINK: None,
}
COOLDOWN_KINDS = (OutboxKind.CONFIRM, OutboxKind.ADDRESS_CONFIRM, OutboxKind.DATA_LINK)


# -- writing the outbox -----------------------------------------------------------------------


def enqueue(conn: sa.Connection, subscriber_id: int, now: datetime,
            kind: OutboxKind = OutboxKind.CONFIRM, address: str | None = None) -> int:
    """Within the caller's transaction (the change the mail follows): a row for the sender;
    its id. ``address``: the one to mail when it is not the subscriber's own."""
    inserted = conn.execute(confirmations.insert().values(
        subscriber_id=subscriber_id, kind=kind, address=address,
        status=ConfirmationStatus.PENDING, attempts=0, next_attempt_at=now, created_at=now,
        updated_at=now)).inserted_primary_key
    assert inserted is not None  # an INSERT of one row always has its key
    return int(inserted[0])


def confirm(config: Config, engine: sa.Engine, subscriber_id: int,
            now: datetime) -> changes.Change | None:
    """The person confirms with the link in their mail (``changes.confirm``); with ``welcome``
    on, a welcome mail is queued in the same transaction, and only when the confirmation made
    the subscriber active: a repeated confirm changes nothing, so queues nothing."""
    def welcome(conn: sa.Connection) -> None:
        enqueue(conn, subscriber_id, now, OutboxKind.WELCOME)

    return changes.confirm(engine, subscriber_id, now,
                           then=welcome if config.welcome else None)


def add_welcomed(engine: sa.Engine, email: str, *, name: str | None = None,
                 status: str = SubscriberStatus.ACTIVE,
                 attributes: dict[str, Any] | None = None) -> Subscriber:
    """``subscribers add --welcome``: the operator adds an active subscriber, and a welcome
    mail is queued in the same transaction (the web process or the worker sends it)."""
    if status != SubscriberStatus.ACTIVE:
        raise SubscriberError(f"--welcome is for an active subscriber, not {status}")

    def welcome(conn: sa.Connection, subscriber_id: int) -> None:
        enqueue(conn, subscriber_id, utc_now(), OutboxKind.WELCOME)

    return subscribers_.add(engine, email, name=name, status=status, attributes=attributes,
                            then=welcome)


def request_confirmation(engine: sa.Engine, address: Address, name: str | None,
                         consent: changes.Consent, now: datetime, *,
                         method: ChangeMethod = ChangeMethod.WEB) -> None:
    """A web sign-up and its outbox row: one transaction, the same whoever the address is
    (the sender decides whether a mail goes out; the person is told the same thing either
    way)."""
    with begin_write(engine) as conn:
        subscriber_id = signup.sign_up(conn, address, name, consent, now, method=method)
        enqueue(conn, subscriber_id, now)


def resend(engine: sa.Engine, subscriber_id: int, now: datetime) -> bool:
    """A new confirmation mail for a still-pending subscriber whose link expired (the sender
    keeps to the cooldown). True when a row was queued."""
    with begin_write(engine) as conn:
        status = conn.execute(sa.select(subscribers.c.status)
                              .where(subscribers.c.id == subscriber_id)).scalar()
        if status != SubscriberStatus.PENDING:
            return False
        enqueue(conn, subscriber_id, now)
        return True


# -- draining the outbox ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    """What became of a claimed row this drain: ``status`` is the state it asks for, where
    ``pending`` means tried again after a delay (``failed`` once out of attempts)."""

    status: ConfirmationStatus
    message_id: str = ""
    error: str = ""


def drain_outbox(config: Config, engine: sa.Engine, provider: Transport | None = None, *,
                 limit: int = 100, clock: Callable[[], datetime] = utc_now) -> int:
    """Send what is due in the outbox; return how many mails the provider accepted.

    ``provider`` is the seam tests inject; by default the configured provider's (the ``eml``
    provider writes to ``<outbox_dir>/confirmations/``).
    """
    return asyncio.run(adrain_outbox(config, engine, provider, limit=limit, clock=clock))


async def adrain_outbox(config: Config, engine: sa.Engine, provider: Transport | None = None,
                        *, limit: int = 100, clock: Callable[[], datetime] = utc_now,
                        **transport_options: Any) -> int:
    """``drain_outbox`` for a running event loop (the web process); ``transport_options`` reach
    the configured provider's HTTP client (the web app's ``http_transport`` seam)."""
    now = clock()
    due = await asyncio.to_thread(_claim, engine, now, limit)
    if not due:
        return 0
    if provider is not None:
        return await _send(config, engine, provider, due, now, clock)
    own = make_transport(config, out_dir=Path(config.outbox_dir) / "confirmations",
                         **transport_options)
    try:
        return await _send(config, engine, own, due, now, clock)
    finally:
        await own.aclose()


def _claim(engine: sa.Engine, now: datetime, limit: int) -> list[Due]:
    """Claim the due rows and judge each: mailed, or cancelled and why."""
    c, s = confirmations.c, subscribers.c
    with begin_write(engine) as conn:
        conn.execute(confirmations.delete().where(
            c.status == ConfirmationStatus.CANCELLED, c.updated_at < now - CANCELLED_KEPT))
        query = (
            sa.select(c.id, c.attempts, c.subscriber_id, c.kind, c.address, c.created_at)
            .where(c.status == ConfirmationStatus.PENDING, c.next_attempt_at <= now,
                   sa.or_(c.claimed_until.is_(None), c.claimed_until < now))
            .order_by(c.next_attempt_at, c.id).limit(limit)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = conn.execute(query).all()
        if not rows:
            return []
        claimed = [r.id for r in rows]
        conn.execute(confirmations.update().where(c.id.in_(claimed))
                     .values(claimed_until=now + LEASE, attempts=c.attempts + 1, updated_at=now))
        people = {r.id: r for r in conn.execute(
            sa.select(s.id, s.email, s.name, s.status).where(
                s.id.in_({r.subscriber_id for r in rows})))}
        mailed = _mailed(conn, {(r.subscriber_id, r.kind) for r in rows
                                if r.kind in COOLDOWN_KINDS}, claimed, now)
    due: list[Due] = []
    seen: set[tuple[int, str]] = set()
    for row in rows:
        kind = OutboxKind(row.kind)
        person = people.get(row.subscriber_id)
        skip = _skip(kind, person.status if person else None, (row.subscriber_id, kind) in seen,
                     mailed.get((row.subscriber_id, kind)), now)
        if skip or person is None:
            due.append(Due(row.id, row.attempts + 1, kind, row.created_at, None, skip))
            continue
        seen.add((row.subscriber_id, kind))
        # The row's own address, where it mails one that is not (or no longer) the
        # subscriber's: an address change's new address, or the old one its notice goes to.
        recipient = Recipient(person.id, row.address or person.email, person.name or "")
        due.append(Due(row.id, row.attempts + 1, kind, row.created_at, recipient))
    return due


def _skip(kind: OutboxKind, status: str | None, again: bool,
          mailed: tuple[datetime, int] | None, now: datetime) -> str:
    """Why a claimed row gets no mail, or "" when it gets one."""
    if status is None:
        return "no subscriber"
    receives = RECEIVES.get(kind)
    if receives is not None and status not in receives:
        # A confirmation: active, bounced or complained when signing up, or confirmed or
        # stopped since; a welcome: stopped since its confirmation.
        return f"not {' or '.join(receives)}"
    if again:
        return "a second row for the same person: one mail is enough"
    if mailed is not None:
        last, today = mailed
        if now - last < COOLDOWN or today >= DAILY_LIMIT:
            return "cooldown"
    return ""


def _mailed(conn: sa.Connection, asked: set[tuple[int, str]], claimed: list[int],
            now: datetime) -> dict[tuple[int, str], tuple[datetime, int]]:
    """The cooldown's memory, per subscriber and kind: when the newest mail of that kind
    mailed to them (sent, failed, or still being tried) was asked for, and how many were in
    the last day. Rows cancelled never count; the rows claimed now are the ones being
    judged."""
    if not asked:
        return {}
    c = confirmations.c
    tried = sa.or_(c.status.in_((ConfirmationStatus.SENT, ConfirmationStatus.FAILED)),
                   sa.and_(c.status == ConfirmationStatus.PENDING, c.attempts > 0))
    query = (
        sa.select(c.subscriber_id, c.kind, sa.func.max(c.created_at),
                  sa.func.count().filter(c.created_at > now - timedelta(days=1)))
        .where(c.subscriber_id.in_(sorted({i for i, _ in asked})),
               c.kind.in_(sorted({k for _, k in asked})), c.id.not_in(claimed), tried)
        .group_by(c.subscriber_id, c.kind)
    )
    out: dict[tuple[int, str], tuple[datetime, int]] = {}
    for subscriber_id, kind, last, today in conn.execute(query):
        if last.tzinfo is None:  # aggregates bypass the column type on SQLite
            last = last.replace(tzinfo=UTC)
        out[(subscriber_id, kind)] = (last, today)
    return out


async def _send(config: Config, engine: sa.Engine, transport: Transport, due: list[Due],
                now: datetime, clock: Callable[[], datetime]) -> int:
    results: dict[int, _Answer] = {}  # by row id
    for d in due:
        if d.recipient is None:
            results[d.row_id] = _Answer(ConfirmationStatus.CANCELLED, error=d.skip)
    size = max(1, min(config.batch_size, transport.max_batch))
    for kind in OutboxKind:
        live = [d for d in due if d.recipient is not None and d.kind is kind]
        if not live:
            continue
        try:
            latest = (await asyncio.to_thread(latest_edition_url, config, engine)
                      if kind is OutboxKind.WELCOME else "")
            mail = OutboxMail(config, now, kind, latest_url=latest)
        except Exception as exc:  # a broken template must not stop the drain loop for good
            log.error("%s mail cannot be rendered: %s", kind, exc)
            for d in live:
                results[d.row_id] = _Answer(ConfirmationStatus.PENDING, error=str(exc))
            continue
        for start in range(0, len(live), size):
            batch = live[start:start + size]
            results.update(await _send_batch(transport, mail, batch))
    await asyncio.to_thread(_record, engine, due, results, clock())
    return sum(1 for answer in results.values() if answer.status is ConfirmationStatus.SENT)


def latest_edition_url(config: Config, engine: sa.Engine) -> str:
    """The newest sent edition's page in the archive, or the archive while none is; "" when
    there is no archive to link to."""
    base = config.base_url.rstrip("/")
    if not (base and config.archive):
        return ""
    with engine.connect() as conn:
        week = conn.execute(sa.select(sends.c.week).order_by(sends.c.created_at.desc())
                            .limit(1)).scalar()
    return f"{base}/archive/{week}" if week else f"{base}/archive"


async def _send_batch(transport: Transport, mail: OutboxMail,
                      batch: Sequence[Due]) -> dict[int, _Answer]:
    out: dict[int, _Answer] = {}
    ready: list[Due] = []
    messages: list[Personalized] = []
    for d in batch:
        try:
            messages.append(mail.personalize_row(d))
        except NewsletterError as exc:  # a stored address no message can carry
            out[d.row_id] = _Answer(ConfirmationStatus.FAILED, error=str(exc))
            continue
        ready.append(d)
    if not ready:
        return out
    key = f"{mail.kind}-{batch[0].row_id}-{batch[0].attempts}-{secrets.token_hex(4)}"[:32]
    try:
        sent = await transport.send_batch(mail, messages, batch_key=key)
    except (BatchError, TransportError) as exc:
        log.warning("%s mails not sent (%d), will retry: %s", mail.kind, len(ready), exc)
        return out | {d.row_id: _Answer(ConfirmationStatus.PENDING, error=str(exc))
                      for d in ready}
    for d, result in zip(ready, sent, strict=True):
        if result.kind == OutcomeKind.SENT:
            out[d.row_id] = _Answer(ConfirmationStatus.SENT, message_id=result.message_id)
        else:  # refused for good, or worth another try later
            status = (ConfirmationStatus.FAILED if result.kind == OutcomeKind.FAILED
                      else ConfirmationStatus.PENDING)
            out[d.row_id] = _Answer(status, error=f"{result.code} {result.reason}".strip())
    return out


def _record(engine: sa.Engine, due: list[Due], results: dict[int, _Answer],
            now: datetime) -> None:
    c = confirmations.c
    pending = ConfirmationStatus.PENDING
    with begin_write(engine) as conn:
        for d in due:
            answer = results[d.row_id]
            values: dict[str, object] = {"claimed_until": None, "updated_at": now,
                                         "error": answer.error or None}
            if answer.status is ConfirmationStatus.SENT:
                values.update(status=answer.status, sent_at=now,
                              message_id=answer.message_id or None)
            elif answer.status is pending and d.attempts < MAX_ATTEMPTS:
                delay = min(FIRST_RETRY * 2 ** (d.attempts - 1), MAX_RETRY)
                values.update(next_attempt_at=now + timedelta(seconds=delay))
            else:  # out of attempts: a row asking for another try has failed
                values.update(status=ConfirmationStatus.FAILED if answer.status is pending
                              else answer.status)
            conn.execute(confirmations.update().where(c.id == d.row_id).values(values))


def next_due(engine: sa.Engine) -> datetime | None:
    """When the earliest pending row is due (the web's sender sleeps until then)."""
    c = confirmations.c
    with engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.min(c.next_attempt_at))
                             .where(c.status == ConfirmationStatus.PENDING)).scalar()
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
