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
import html
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..audience import changes, signup
from ..audience.addresses import Address, envelope_address
from ..audience.history import ChangeMethod
from ..audience.model import SubscriberStatus
from ..audience.recipient import Recipient
from ..audience.tokens import make_token
from ..clock import utc_now
from ..config import Config
from ..edition.placeholders import FieldTemplate, RecipientMarkers
from ..edition.render import render_message
from ..errors import NewsletterError
from ..message.mime import MessageBuilder
from ..message.model import Personalized
from ..message.outgoing import sender_of
from ..providers import make_transport
from ..providers.base import BatchError, OutcomeKind, Transport, TransportError
from ..store.db import begin_write
from ..store.tables import confirmations, subscribers
from .states import ConfirmationStatus

log = logging.getLogger("newsletter.confirmations")

HTML_TEMPLATE = "confirm.mjml.j2"
TEXT_TEMPLATE = "confirm.txt.j2"
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


# -- writing the outbox -----------------------------------------------------------------------


def enqueue(conn: sa.Connection, subscriber_id: int, now: datetime) -> None:
    conn.execute(confirmations.insert().values(
        subscriber_id=subscriber_id, status=ConfirmationStatus.PENDING, attempts=0,
        next_attempt_at=now, created_at=now, updated_at=now))


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


# -- the mail ---------------------------------------------------------------------------------


class ConfirmationMail:
    """The confirmation, rendered once per drain, as a transport's ``Outgoing``: each
    recipient's link is a placeholder filled in per message, like an edition's fields."""

    def __init__(self, config: Config, now: datetime):
        self._config = config
        self._now = now
        self._base_url = config.base_url.rstrip("/")
        self._domain = config.sender_domain
        nonce = "nlc" + secrets.token_hex(8)
        markers = RecipientMarkers(nonce)
        context = {"recipient": markers, "confirm_url": markers.marker("confirm_url"),
                   "max_age_days": max(1, config.confirm_max_age // 86400)}
        page, text = render_message(config, HTML_TEMPLATE, TEXT_TEMPLATE, context)
        self.sender = sender_of(config)
        self.subject = f"Confirm your subscription to {config.name}"
        self.edition_key = "confirm"
        self.content_hash = ""
        self.html = FieldTemplate.split(page, nonce)
        self.text = FieldTemplate.split(text, nonce)
        self._builder = MessageBuilder(self.sender, self.subject, self.html, self.text)

    def confirm_url(self, subscriber_id: int) -> str:
        token = make_token(self._config.signing_key, "confirm", subscriber_id,
                           issued_at=self._now)
        return f"{self._base_url}/confirm/{token}"

    def personalize(self, recipient: Recipient) -> Personalized:
        name = recipient.name.strip()
        known = {"name": name, "first_name": name.split()[0] if name else "there",
                 "email": recipient.email, "confirm_url": self.confirm_url(recipient.id)}
        fields = set(self.html.fields) | set(self.text.fields)
        values = {field: known.get(field, "") for field in fields}
        html_values = {k: html.escape(v).encode("ascii", "xmlcharrefreplace").decode("ascii")
                       for k, v in values.items()}
        message_id = f"<confirm.{recipient.id}.{secrets.token_hex(6)}@{self._domain}>"
        return Personalized(recipient=recipient, email=envelope_address(recipient.email),
                            name=name, values=values, html_values=html_values, headers={},
                            message_id=message_id)

    def message(self, person: Personalized, *, dot_stuffed: bool = False) -> bytes:
        return self._builder.build(person, dot_stuffed=dot_stuffed)


# -- draining the outbox ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Due:
    row_id: int
    attempts: int
    recipient: Recipient | None  # None: not mailed, for the reason in ``skip``
    skip: str = ""


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


def _claim(engine: sa.Engine, now: datetime, limit: int) -> list[_Due]:
    """Claim the due rows and judge each: mailed, or cancelled and why."""
    c, s = confirmations.c, subscribers.c
    with begin_write(engine) as conn:
        conn.execute(confirmations.delete().where(
            c.status == ConfirmationStatus.CANCELLED, c.updated_at < now - CANCELLED_KEPT))
        query = (
            sa.select(c.id, c.attempts, c.subscriber_id)
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
        people = {r.id: Recipient(r.id, r.email, r.name or "") for r in conn.execute(
            sa.select(s.id, s.email, s.name).where(
                s.id.in_([r.subscriber_id for r in rows]),
                s.status == SubscriberStatus.PENDING))}
        mailed = _mailed(conn, set(people), claimed, now)
    due: list[_Due] = []
    seen: set[int] = set()
    for row in rows:
        person = people.get(row.subscriber_id)
        skip = _skip(person, seen, mailed.get(row.subscriber_id), now)
        if skip or person is None:
            due.append(_Due(row.id, row.attempts + 1, None, skip))
            continue
        seen.add(person.id)
        due.append(_Due(row.id, row.attempts + 1, person))
    return due


def _skip(person: Recipient | None, seen: set[int], mailed: tuple[datetime, int] | None,
          now: datetime) -> str:
    """Why a claimed row gets no mail, or "" when it gets one."""
    if person is None:
        # Active, bounced or complained when signing up, or confirmed or stopped since.
        return "not pending"
    if person.id in seen:
        return "a second row for the same person: one mail is enough"
    if mailed is not None:
        last, today = mailed
        if now - last < COOLDOWN or today >= DAILY_LIMIT:
            return "cooldown"
    return ""


def _mailed(conn: sa.Connection, subscriber_ids: set[int], claimed: list[int],
            now: datetime) -> dict[int, tuple[datetime, int]]:
    """The cooldown's memory, per subscriber: when the newest confirmation mailed to them
    (sent, failed, or still being tried) was asked for, and how many were in the last day.
    Rows cancelled never count; the rows claimed now are the ones being judged."""
    if not subscriber_ids:
        return {}
    c = confirmations.c
    tried = sa.or_(c.status.in_((ConfirmationStatus.SENT, ConfirmationStatus.FAILED)),
                   sa.and_(c.status == ConfirmationStatus.PENDING, c.attempts > 0))
    query = (
        sa.select(c.subscriber_id, sa.func.max(c.created_at),
                  sa.func.count().filter(c.created_at > now - timedelta(days=1)))
        .where(c.subscriber_id.in_(sorted(subscriber_ids)), c.id.not_in(claimed), tried)
        .group_by(c.subscriber_id)
    )
    out: dict[int, tuple[datetime, int]] = {}
    for subscriber_id, last, today in conn.execute(query):
        if last.tzinfo is None:  # aggregates bypass the column type on SQLite
            last = last.replace(tzinfo=UTC)
        out[subscriber_id] = (last, today)
    return out


async def _send(config: Config, engine: sa.Engine, transport: Transport, due: list[_Due],
                now: datetime, clock: Callable[[], datetime]) -> int:
    results: dict[int, _Answer] = {}  # by row id
    for d in due:
        if d.recipient is None:
            results[d.row_id] = _Answer(ConfirmationStatus.CANCELLED, error=d.skip)
    live = [d for d in due if d.recipient is not None]
    if live:
        try:
            mail = ConfirmationMail(config, now)
        except Exception as exc:  # a broken template must not stop the drain loop for good
            log.error("confirmation mail cannot be rendered: %s", exc)
            for d in live:
                results[d.row_id] = _Answer(ConfirmationStatus.PENDING, error=str(exc))
            live = []
        size = max(1, min(config.batch_size, transport.max_batch))
        for start in range(0, len(live), size):
            batch = live[start:start + size]
            results.update(await _send_batch(transport, mail, batch))
    await asyncio.to_thread(_record, engine, due, results, clock())
    return sum(1 for answer in results.values() if answer.status is ConfirmationStatus.SENT)


async def _send_batch(transport: Transport, mail: ConfirmationMail,
                      batch: Sequence[_Due]) -> dict[int, _Answer]:
    out: dict[int, _Answer] = {}
    ready: list[_Due] = []
    messages: list[Personalized] = []
    for d in batch:
        assert d.recipient is not None
        try:
            messages.append(mail.personalize(d.recipient))
        except NewsletterError as exc:  # a stored address no message can carry
            out[d.row_id] = _Answer(ConfirmationStatus.FAILED, error=str(exc))
            continue
        ready.append(d)
    if not ready:
        return out
    key = f"confirm-{batch[0].row_id}-{batch[0].attempts}-{secrets.token_hex(4)}"
    try:
        sent = await transport.send_batch(mail, messages, batch_key=key)
    except (BatchError, TransportError) as exc:
        log.warning("confirmation mails not sent (%d), will retry: %s", len(ready), exc)
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


def _record(engine: sa.Engine, due: list[_Due], results: dict[int, _Answer],
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
