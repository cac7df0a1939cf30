"""The subscriber list: add, unsubscribe, bounce, complain, confirm, erase.

This module and ``audience.signup`` (the changes a subscriber makes on the web: sign-up,
confirm, unsubscribe, resubscribe) are the only code that changes a subscriber's status.
The rules this one keeps:

* An address is unique case-insensitively (``email_key``); the address as given is kept for
  display and sending.
* Nothing here re-activates an address that is unsubscribed, bounced or complained, and nothing
  re-adds an address erased on request (its sha256 stays in ``suppressions``).
* Every change is one transaction, and every time an aware UTC datetime.

Reading is in ``audience.lookup``; CSV import and export in ``audience.transfer``, which keeps
the same rules (an import adds new addresses only; it changes no existing subscriber).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ..clock import utc_now
from ..errors import SubscriberError
from ..store.db import begin_write
from ..store.tables import subscribers, suppressions
from .addresses import clean_name, email_hash
from .lookup import check_status, describe_address, parse_or_raise, suppressed, to_subscriber
from .model import ADDABLE, EMAIL_COLUMNS, ERASED_MESSAGE, EXPORT_COLUMNS, STOPPED, Subscriber

_NON_WORD = re.compile(r"\W+")


def add(
    engine: sa.Engine,
    email: str,
    name: str | None = None,
    status: str = "active",
    source: str = "cli",
    attributes: Mapping[str, Any] | None = None,
) -> Subscriber:
    """Add one address; refuse one already on the list, stopped, or erased on request."""
    check_status(status, ADDABLE)
    address = parse_or_raise(email)
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
        if suppressed(conn, email_hash(address.key)):
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


def _status_of(conn: sa.Connection, key: str) -> str | None:
    query = sa.select(subscribers.c.status).where(subscribers.c.email_key == key)
    return conn.execute(query).scalar()


def _refusal(email: str, status: str) -> str:
    if status in STOPPED:
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
            .where(where, subscribers.c.status.in_(ADDABLE))
            .values(status=status, unsubscribed_at=now, unsubscribe_reason=reason, updated_at=now)
        )
        row = conn.execute(sa.select(subscribers).where(where)).first()
    return to_subscriber(row) if row else None


def unsubscribe(engine: sa.Engine, email: str, reason: str = "unsubscribed via CLI") -> Subscriber:
    """Unsubscribe an address; idempotent. Raise SubscriberError if it is not on the list."""
    address = parse_or_raise(email)
    sub = _stop(engine, subscribers.c.email_key == address.key, "unsubscribed", reason)
    if sub is None:
        raise SubscriberError(describe_address(engine, address))
    return sub


def unsubscribe_by_id(engine: sa.Engine, subscriber_id: int, reason: str) -> Subscriber | None:
    """Unsubscribe by id (from a signed link); None when no such subscriber (e.g. erased)."""
    return _stop(engine, subscribers.c.id == subscriber_id, "unsubscribed", reason)


def mark_bounced(engine: sa.Engine, email: str, reason: str) -> Subscriber | None:
    """A hard bounce reported by the provider: never send to the address again."""
    key = parse_or_raise(email).key
    return _stop(engine, subscribers.c.email_key == key, "bounced", reason)


def mark_bounced_ids(conn: sa.Connection, ids: list[int], reason: str) -> None:
    """Within the caller's transaction (the delivery ledger's): these addresses bounced."""
    now = utc_now()
    conn.execute(
        subscribers.update()
        .where(subscribers.c.id.in_(ids), subscribers.c.status.in_(ADDABLE))
        .values(status="bounced", unsubscribed_at=now, unsubscribe_reason=reason, updated_at=now)
    )


def mark_complained(engine: sa.Engine, email: str, reason: str) -> Subscriber | None:
    """A spam complaint reported by the provider: never send to the address again."""
    key = parse_or_raise(email).key
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
    return to_subscriber(row) if row else None


def remove(engine: sa.Engine, email: str) -> bool:
    """Erase an address (GDPR Art. 17): delete its row, keep only a hash to refuse it later.

    Returns False if it had already been erased; raises SubscriberError if it was never here.
    """
    address = parse_or_raise(email)
    return _erase(engine, address.key, f"no subscriber with address {address.email}")


def remove_by_id(engine: sa.Engine, subscriber_id: int) -> str:
    """``remove`` for a row found by id (``subscribers check`` lists rows whose stored address
    no longer parses); returns the address that was erased."""
    query = sa.select(subscribers.c.email, subscribers.c.email_key)
    with engine.connect() as conn:
        row = conn.execute(query.where(subscribers.c.id == subscriber_id)).first()
    if row is None:
        raise SubscriberError(f"no subscriber with id {subscriber_id}")
    _erase(engine, row.email_key, f"no subscriber with id {subscriber_id}")
    return row.email


def _erase(engine: sa.Engine, key: str, missing: str) -> bool:
    digest = email_hash(key)
    with begin_write(engine) as conn:
        deleted = conn.execute(
            subscribers.delete().where(subscribers.c.email_key == key)
        ).rowcount
        already = suppressed(conn, digest)
        if not already:
            if not deleted:
                raise SubscriberError(missing)
            conn.execute(
                suppressions.insert().values(
                    email_hash=digest, reason="erased", created_at=utc_now()
                )
            )
    return bool(deleted)
