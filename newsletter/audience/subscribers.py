"""The subscriber list: add, read, unsubscribe, erase.

This is the only code that changes a subscriber's status. The rules it keeps:

* An address is unique case-insensitively (``email_key``); the address as given is kept for
  display and sending.
* Nothing here re-activates an address that is unsubscribed, bounced or complained, and nothing
  re-adds an address erased on request (its sha256 stays in ``suppressions``).
* Every change is one transaction.
* Every time is an aware UTC datetime.

CSV import and export are in ``newsletter.audience.transfer``, which keeps the same rules with
the helpers here (an import adds new addresses only; it changes no existing subscriber).

Plain functions taking an Engine (from ``newsletter.store.db.connect``). Reading functions stream in
id order with keyset pagination, so memory stays flat however long the list.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ..errors import SubscriberError
from ..store.db import begin_write
from ..store.tables import STATUSES, STOPPED_STATUSES, subscribers, suppressions
from .recipient import Recipient

ADD_STATUSES = ("active", "pending")
# Columns CSV export writes and import understands (newsletter.transfer); any other column is
# an attribute, so no attribute may take one of these names.
EXPORT_COLUMNS = (
    "email",
    "name",
    "status",
    "source",
    "consented_at",
    "confirmed_at",
    "unsubscribed_at",
    "unsubscribe_reason",
    "created_at",
)
EMAIL_COLUMNS = ("email", "e-mail")
MAX_NAME = 256
ERASED_MESSAGE = "address was removed on request; not re-subscribed"


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str | None
    status: str
    source: str
    attributes: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    consented_at: datetime | None = None
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    unsubscribe_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 strings."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        out["attributes"] = dict(self.attributes)
        return out


@dataclass(frozen=True)
class Address:
    """A validated address: as given, its unique key, and a display name if one came with it."""

    email: str
    key: str
    name: str | None = None


# --------------------------------------------------------------------------- addresses

_NAME_ADDR = re.compile(r"^(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>$")
# C0 and C1 controls and Unicode line/paragraph separators: none belongs in a one-line value.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NON_WORD = re.compile(r"\W+")


@functools.cache
def _email_validator():
    # Imported on first use, not with the module: `subscribers count` never needs it.
    import email_validator

    return email_validator


def parse_address(value: str) -> Address:
    """Validate ``addr`` or ``Name <addr>`` (syntax only, no network); raise SubscriberError."""
    ev = _email_validator()
    text = value.strip()
    name = None
    match = _NAME_ADDR.match(text)
    if match:
        text = match["addr"].strip()
        name = match["name"].strip().strip('"').strip() or None
    if not text:
        raise SubscriberError("empty address")
    try:
        valid = ev.validate_email(text, check_deliverability=False)
    except ev.EmailNotValidError as exc:
        raise SubscriberError(f"invalid address: {exc}") from None
    # Unicode domain (IDNA-decoded, so "xn--..." and its Unicode form are one address), and the
    # whole address lower-cased: unique case-insensitively.
    key = f"{valid.local_part}@{valid.domain}".lower()
    return Address(email=text, key=key, name=name)


def email_key(email: str) -> str:
    """The normalized form that makes an address unique."""
    return parse_address(email).key


def email_hash(key: str) -> str:
    """What ``suppressions`` keeps of an erased address: sha256 of its normalized form."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_status(status: str, allowed: Iterable[str] = STATUSES) -> str:
    allowed = tuple(allowed)
    if status not in allowed:
        raise SubscriberError(f"unknown status {status!r}; expected one of: {', '.join(allowed)}")
    return status


def clean_name(name: str | None) -> str | None:
    """A display name fit for a mail header: one line, bounded; None when empty."""
    if name is None:
        return None
    name = name.strip()
    if CONTROL_CHARS.search(name):
        raise SubscriberError("name contains a line break or control character")
    if len(name) > MAX_NAME:
        raise SubscriberError(f"name is longer than {MAX_NAME} characters")
    return name or None


def utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- reading


def _to_subscriber(row: sa.Row) -> Subscriber:
    m = row._mapping
    return Subscriber(
        id=m["id"],
        email=m["email"],
        name=m["name"],
        status=m["status"],
        source=m["source"],
        attributes=m["attributes"] or {},
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        consented_at=m["consented_at"],
        confirmed_at=m["confirmed_at"],
        unsubscribed_at=m["unsubscribed_at"],
        unsubscribe_reason=m["unsubscribe_reason"],
    )


def get(engine: sa.Engine, email: str) -> Subscriber | None:
    """The subscriber with this address (any case), or None."""
    key = _parse_or_raise(email).key
    with engine.connect() as conn:
        row = conn.execute(sa.select(subscribers).where(subscribers.c.email_key == key)).first()
    return _to_subscriber(row) if row else None


def get_by_id(engine: sa.Engine, subscriber_id: int) -> Subscriber | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
    return _to_subscriber(row) if row else None


def is_suppressed(engine: sa.Engine, email: str) -> bool:
    """Whether this address was erased on request."""
    digest = email_hash(_parse_or_raise(email).key)
    with engine.connect() as conn:
        return _suppressed(conn, digest)


def _suppressed(conn: sa.Connection, digest: str) -> bool:
    query = sa.select(suppressions.c.id).where(suppressions.c.email_hash == digest)
    return conn.execute(query).first() is not None


def _keyset(engine: sa.Engine, query: sa.Select, chunk: int) -> Iterator[sa.Row]:
    """Rows of ``query`` in id order, fetched ``chunk`` at a time.

    Each page is its own short read, so no cursor or lock is held while the caller works
    (sending a batch can take minutes), and memory is bounded by ``chunk``.
    """
    last = 0
    while True:
        page = query.where(subscribers.c.id > last).order_by(subscribers.c.id).limit(chunk)
        with engine.connect() as conn:
            rows = conn.execute(page).all()
        yield from rows
        if len(rows) < chunk:
            return
        last = rows[-1].id


def iter_subscribers(
    engine: sa.Engine, status: str | None = None, chunk: int = 1000
) -> Iterator[Subscriber]:
    """Every subscriber (or those with ``status``), in id order, streamed."""
    query = sa.select(subscribers)
    if status is not None:
        query = query.where(subscribers.c.status == check_status(status))
    for row in _keyset(engine, query, chunk):
        yield _to_subscriber(row)


def iter_recipients(
    engine: sa.Engine, status: str = "active", chunk: int = 1000
) -> Iterator[Recipient]:
    """The recipients with ``status`` in id order, streamed: what the sender needs of each."""
    c = subscribers.c
    query = sa.select(c.id, c.email, c.name, c.attributes).where(c.status == check_status(status))
    for row in _keyset(engine, query, chunk):
        yield Recipient(row.id, row.email, row.name or "", dict(row.attributes or {}))


def count_by_status(engine: sa.Engine) -> dict[str, int]:
    """Subscribers per status, every status present (zero when none)."""
    query = sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
    with engine.connect() as conn:
        counts = dict(conn.execute(query).all())
    return {status: counts.get(status, 0) for status in STATUSES}


# --------------------------------------------------------------------------- changing


def add(
    engine: sa.Engine,
    email: str,
    name: str | None = None,
    status: str = "active",
    source: str = "cli",
    attributes: Mapping[str, Any] | None = None,
) -> Subscriber:
    """Add one address; refuse one already on the list, stopped, or erased on request."""
    check_status(status, ADD_STATUSES)
    address = _parse_or_raise(email)
    name = clean_name(name) or address.name
    attributes = _check_attributes(attributes or {})
    now = utc_now()
    values = dict(
        email=address.email,
        email_key=address.key,
        name=name,
        status=status,
        source=source,
        attributes=attributes,
        consented_at=now,
        # Active means the operator vouches for a confirmed consent, as of now.
        confirmed_at=now if status == "active" else None,
        created_at=now,
        updated_at=now,
    )
    with begin_write(engine) as conn:
        if _suppressed(conn, email_hash(address.key)):
            raise SubscriberError(f"{address.email}: {ERASED_MESSAGE}")
        existing = _status_of(conn, address.key)
        if existing is not None:
            raise SubscriberError(_refusal(address.email, existing))
        try:
            new_id = conn.execute(subscribers.insert().values(values)).inserted_primary_key[0]
        except sa.exc.IntegrityError:
            # Another process added it between our check and insert.
            raise SubscriberError(f"{address.email} is already on the list") from None
    return Subscriber(id=new_id, **{k: v for k, v in values.items() if k != "email_key"})


def _parse_or_raise(email: str) -> Address:
    try:
        return parse_address(email)
    except SubscriberError as exc:
        raise SubscriberError(f"{email.strip()!r}: {exc}") from None


def _status_of(conn: sa.Connection, key: str) -> str | None:
    query = sa.select(subscribers.c.status).where(subscribers.c.email_key == key)
    return conn.execute(query).scalar()


def _refusal(email: str, status: str) -> str:
    if status in STOPPED_STATUSES:
        return f"{email} is {status}; not re-subscribed"
    return f"{email} is already on the list ({status})"


def attribute_name(key: str) -> str:
    """The stored form of an attribute name: lower case, runs of other characters as "_".

    So a CSV column "First Name" is ``{{ attributes.first_name }}`` in a template, and export
    never writes two columns that differ only in case (import would refuse them).
    """
    return _NON_WORD.sub("_", key.strip().lower()).strip("_")


def _check_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        name = attribute_name(key)
        if not name or name in EXPORT_COLUMNS or name in EMAIL_COLUMNS:
            raise SubscriberError(f"attribute name {key!r} is empty or reserved")
        if name in out:
            raise SubscriberError(f"attribute {name!r} is given twice")
        if isinstance(value, str):
            if "\x00" in value:
                raise SubscriberError(f"attribute {name!r} contains a NUL character")
            value = value.strip()
        out[name] = value
    return out


def _stop(
    engine: sa.Engine, where: sa.ColumnElement[bool], status: str, reason: str
) -> Subscriber | None:
    """Move a pending/active subscriber to a stopped status; leave a stopped one as it is."""
    now = utc_now()
    with begin_write(engine) as conn:
        conn.execute(
            subscribers.update()
            .where(where, subscribers.c.status.in_(ADD_STATUSES))
            .values(status=status, unsubscribed_at=now, unsubscribe_reason=reason, updated_at=now)
        )
        row = conn.execute(sa.select(subscribers).where(where)).first()
    return _to_subscriber(row) if row else None


def unsubscribe(engine: sa.Engine, email: str, reason: str = "unsubscribed via CLI") -> Subscriber:
    """Unsubscribe an address; idempotent. Raise SubscriberError if it is not on the list."""
    address = _parse_or_raise(email)
    sub = _stop(engine, subscribers.c.email_key == address.key, "unsubscribed", reason)
    if sub is None:
        raise SubscriberError(_not_found(engine, address))
    return sub


def unsubscribe_by_id(engine: sa.Engine, subscriber_id: int, reason: str) -> Subscriber | None:
    """Unsubscribe by id (from a signed link); None when no such subscriber (e.g. erased)."""
    return _stop(engine, subscribers.c.id == subscriber_id, "unsubscribed", reason)


def mark_bounced(engine: sa.Engine, email: str, reason: str) -> Subscriber | None:
    """A hard bounce reported by the provider: never send to the address again."""
    key = _parse_or_raise(email).key
    return _stop(engine, subscribers.c.email_key == key, "bounced", reason)


def mark_bounced_ids(conn: sa.Connection, ids: list[int], reason: str) -> None:
    """Within the caller's transaction (the delivery ledger's): these addresses bounced."""
    now = utc_now()
    conn.execute(
        subscribers.update()
        .where(subscribers.c.id.in_(ids), subscribers.c.status.in_(ADD_STATUSES))
        .values(status="bounced", unsubscribed_at=now, unsubscribe_reason=reason, updated_at=now)
    )


def mark_complained(engine: sa.Engine, email: str, reason: str) -> Subscriber | None:
    """A spam complaint reported by the provider: never send to the address again."""
    key = _parse_or_raise(email).key
    return _stop(engine, subscribers.c.email_key == key, "complained", reason)


def confirm_by_id(engine: sa.Engine, subscriber_id: int) -> Subscriber | None:
    """Double opt-in: a pending subscriber becomes active. Anything else is left unchanged."""
    now = utc_now()
    where = subscribers.c.id == subscriber_id
    with begin_write(engine) as conn:
        conn.execute(
            subscribers.update()
            .where(where, subscribers.c.status == "pending")
            .values(status="active", confirmed_at=now, updated_at=now)
        )
        row = conn.execute(sa.select(subscribers).where(where)).first()
    return _to_subscriber(row) if row else None


def remove(engine: sa.Engine, email: str) -> bool:
    """Erase an address (GDPR Art. 17): delete its row, keep only a hash to refuse it later.

    Returns False if it had already been erased; raises SubscriberError if it was never here.
    """
    address = _parse_or_raise(email)
    digest = email_hash(address.key)
    with begin_write(engine) as conn:
        deleted = conn.execute(
            subscribers.delete().where(subscribers.c.email_key == address.key)
        ).rowcount
        already = _suppressed(conn, digest)
        if not already:
            if not deleted:
                raise SubscriberError(f"no subscriber with address {address.email}")
            conn.execute(
                suppressions.insert().values(
                    email_hash=digest, reason="erased", created_at=utc_now()
                )
            )
    return bool(deleted)


def _not_found(engine: sa.Engine, address: Address) -> str:
    with engine.connect() as conn:
        if _suppressed(conn, email_hash(address.key)):
            return f"{address.email} was removed on request; only a hashed entry remains"
    return f"no subscriber with address {address.email}"


def describe_missing(engine: sa.Engine, email: str) -> str:
    """Why ``get`` found nothing: never subscribed, or erased on request."""
    return _not_found(engine, _parse_or_raise(email))
