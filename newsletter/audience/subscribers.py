"""The operator's subscriber list: add an address, erase one.

Every change of a subscriber's status after it is added (the CLI's unsubscribe, a bounce, a
complaint, the web's) is ``audience.changes``'s. The rules this module keeps:

* An address is unique case-insensitively (``email_key``); the address as given is kept for
  display and sending.
* Adding never re-activates an address that is unsubscribed, bounced or complained, and never
  re-adds an address erased on request (its sha256 stays in ``suppressions``).
* Every change is one transaction, recorded in the status history (``audience.history``) in
  that transaction, and every time an aware UTC datetime.

Reading is in ``audience.lookup``; CSV import and export in ``audience.transfer``, which keeps
the same rules (an import adds new addresses only; it changes no existing subscriber).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..clock import utc_now
from ..errors import SubscriberError
from ..store.db import begin_write
from ..store.tables import subscribers
from .addresses import clean_name, email_hash
from .erasure import Erasure, erase_address, erase_id
from .history import ChangeMethod, StatusChange, record
from .lookup import check_status, parse_or_raise, suppressed
from .model import ADDABLE, EMAIL_COLUMNS, ERASED_MESSAGE, EXPORT_COLUMNS, STOPPED, Subscriber

_NON_WORD = re.compile(r"\W+")


def add(
    engine: sa.Engine,
    email: str,
    name: str | None = None,
    status: str = "active",
    source: str = "cli",
    attributes: Mapping[str, Any] | None = None,
    *,
    method: ChangeMethod = ChangeMethod.CLI,
    then: Callable[[sa.Connection, int], None] | None = None,
) -> Subscriber:
    """Add one address; refuse one already on the list, stopped, or erased on request.
    ``then(conn, id)`` runs within the same transaction (the outbox queues a welcome
    there)."""
    check_status(status, ADDABLE)
    address = parse_or_raise(email)
    name = clean_name(name) or address.name
    attributes = _check_attributes(attributes or {})
    now = utc_now()
    # The row's values (the table's columns are untyped), the Subscriber's fields but the key.
    values: dict[str, Any] = dict(
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
            inserted = conn.execute(subscribers.insert().values(values)).inserted_primary_key
        except sa.exc.IntegrityError:
            # Another process added it between our check and insert.
            raise SubscriberError(f"{address.email} is already on the list") from None
        assert inserted is not None  # an INSERT of one row always has its key
        new_id: int = inserted[0]
        record(conn, StatusChange(new_id, now, None, status, method, detail=f"added ({source})"))
        if then is not None:
            then(conn, new_id)
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


def remove(engine: sa.Engine, email: str, outboxes: Iterable[Path] = ()) -> Erasure:
    """Erase an address (GDPR Art. 17) from the database and from the files under
    ``outboxes``, keeping only a hash to refuse it later (``audience.erasure``).

    The result is true when a subscriber row was erased, false when the address had been
    erased before (what arrived since is erased now); raises SubscriberError if nothing here
    ever named it.
    """
    return erase_address(engine, parse_or_raise(email), outboxes)


def remove_by_id(engine: sa.Engine, subscriber_id: int, outboxes: Iterable[Path] = ()) -> Erasure:
    """``remove`` for a row found by id (``subscribers check`` lists rows whose stored address
    no longer parses); the result's ``email`` is the address that was erased."""
    return erase_id(engine, subscriber_id, outboxes)
