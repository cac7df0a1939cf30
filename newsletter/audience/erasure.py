"""Erasing a person (GDPR Art. 17): no trace of their address or name anywhere this project
writes, except the hash that keeps the address from being added again.

In one database transaction:

* their subscriber row goes, and with it their consent details, status history and
  confirmation mails; a sha256 of the normalized address goes into ``suppressions``;
* their ledger rows stay, so that a send's counts stay true, but lose the address and name
  their error text may quote; the row's subscriber id then points at nothing;
* a stored batch payload that carries them (kept for a repeat under the batch's key) is
  dropped whole: the repeat must carry exactly what the first request did, which can no
  longer be, so the batch's unknown rows become plain unknowns, reported by ``status`` and
  resent only with ``--retry-unknown``;
* their events, matched and unmatched, stay for the reports (kind, time, provider, send,
  effect) with the recipient, the reason and the raw payload replaced, and the address and
  name taken out of the other texts (code, message ids, metadata).

Then the outbox folders (``erasure_files``). Nothing on this path logs the address: the
project logs to stderr only, and what is returned is counts.

The ledger's and the event log's tables are written here through ``store.tables``, not
through their own modules (``delivery`` and ``feedback`` come after ``audience`` in the
package table, so it may not import them): erasure must be one transaction, and it only
ever takes data out of their rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import idna
import sqlalchemy as sa

from ..clock import utc_now
from ..errors import SubscriberError
from ..store.db import begin_write
from ..store.tables import (
    batches,
    confirmations,
    consent_details,
    deliveries,
    events,
    status_changes,
    subscribers,
    suppressions,
)
from .addresses import Address, email_hash
from .erasure_files import sweep
from .lookup import suppressed
from .traces import ERASED, Traces, person_batches, person_events

_LABELS = {  # field -> (one, many), in the order the summary lists them
    "subscriber": ("subscriber row", "subscriber rows"),
    "consent": ("consent record", "consent records"),
    "status_changes": ("status change", "status changes"),
    "confirmations": ("confirmation mail", "confirmation mails"),
    "deliveries": ("delivery anonymized", "deliveries anonymized"),
    "batches": ("stored batch dropped", "stored batches dropped"),
    "events": ("event anonymized", "events anonymized"),
    "files": ("outbox file", "outbox files"),
}


@dataclass
class Erasure:
    """What one erasure took out, per place. True when a subscriber row was erased."""

    email: str
    subscriber: int = 0
    consent: int = 0
    status_changes: int = 0
    confirmations: int = 0
    deliveries: int = 0
    batches: int = 0
    events: int = 0
    files: int = 0
    before: bool = False  # the address had been erased on an earlier request
    left: list[Path] = field(default_factory=list)  # files naming it that were not deleted

    def __bool__(self) -> bool:
        return self.subscriber > 0

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name in _LABELS)

    def summary(self) -> str:
        """One line of counts: no address, no name."""
        counts = ((getattr(self, name), one, many) for name, (one, many) in _LABELS.items())
        return "erased: " + ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts)


def erase_address(engine: sa.Engine, address: Address, outboxes: Iterable[Path] = ()) -> Erasure:
    """Erase the subscriber with this address, or what is left of an address erased before
    (events that arrived since, files): raises SubscriberError when nothing names it."""
    erasure, traces = _erase(engine, subscribers.c.email_key == address.key, address)
    _sweep(erasure, outboxes, traces)
    if not erasure.before and not erasure.total and not erasure.left:
        raise SubscriberError(f"no subscriber with address {address.email}")
    return erasure


def erase_id(engine: sa.Engine, subscriber_id: int, outboxes: Iterable[Path] = ()) -> Erasure:
    """Erase the subscriber with this id (a row whose stored address no longer parses)."""
    found = _erase(engine, subscribers.c.id == subscriber_id, None)
    if found is None:
        raise SubscriberError(f"no subscriber with id {subscriber_id}")
    erasure, traces = found
    _sweep(erasure, outboxes, traces)
    return erasure


def _sweep(erasure: Erasure, outboxes: Iterable[Path], traces: Traces) -> None:
    swept = sweep(outboxes, traces)
    erasure.files, erasure.left = swept.deleted, swept.left


@overload
def _erase(engine: sa.Engine, where: sa.ColumnElement[bool],
           address: Address) -> tuple[Erasure, Traces]: ...
@overload
def _erase(engine: sa.Engine, where: sa.ColumnElement[bool],
           address: None) -> tuple[Erasure, Traces] | None: ...


def _erase(engine: sa.Engine, where: sa.ColumnElement[bool],
           address: Address | None) -> tuple[Erasure, Traces] | None:
    """The database part, in one transaction; None when no row matches and no address was
    given to look for instead."""
    s = subscribers.c
    with begin_write(engine) as conn:
        row = conn.execute(sa.select(s.id, s.email, s.email_key, s.name).where(where)).first()
        if row is not None:
            subscriber_id, email, key, name = row.id, row.email, row.email_key, row.name
        elif address is not None:
            subscriber_id, email, key, name = None, address.email, address.key, address.name
        else:
            return None
        traces = Traces(email, key, name)
        digest = email_hash(key)
        already = suppressed(conn, digest)
        erasure = Erasure(email=email, before=already and row is None)
        if subscriber_id is not None:
            _delete_subscriber(conn, subscriber_id, erasure)
            if not already:
                conn.execute(suppressions.insert().values(
                    email_hash=digest, reason="erased", created_at=utc_now()))
            erasure.deliveries = _scrub_deliveries(conn, subscriber_id, traces)
        erasure.batches = _drop_batches(conn, subscriber_id, traces)
        erasure.events = _scrub_events(conn, subscriber_id, traces)
    return erasure, traces


def _delete_subscriber(conn: sa.Connection, subscriber_id: int, erasure: Erasure) -> None:
    """The row and what hangs on it (their foreign keys cascade too; deleted here to count)."""
    # The status history is the consent record (with the IP and user agent of each change
    # made by a request): with the subscriber gone there is no consent left to prove, and the
    # suppression hash is what says "never again".
    erasure.status_changes = _delete(conn, status_changes, status_changes.c.subscriber_id,
                                     subscriber_id)
    erasure.consent = _delete(conn, consent_details, consent_details.c.subscriber_id,
                              subscriber_id)
    erasure.confirmations = _delete(conn, confirmations, confirmations.c.subscriber_id,
                                    subscriber_id)
    erasure.subscriber = _delete(conn, subscribers, subscribers.c.id, subscriber_id)


def _delete(conn: sa.Connection, table: sa.Table, column: sa.Column[int], value: int) -> int:
    return conn.execute(table.delete().where(column == value)).rowcount


def _scrub_deliveries(conn: sa.Connection, subscriber_id: int, traces: Traces) -> int:
    d = deliveries.c
    rows = conn.execute(sa.select(d.send_id, d.error).where(d.subscriber_id == subscriber_id)
                        ).all()
    for row in rows:
        error = traces.scrub(row.error)
        if error != row.error:
            conn.execute(deliveries.update()
                         .where(d.send_id == row.send_id, d.subscriber_id == subscriber_id)
                         .values(error=error))
    return len(rows)


def _drop_batches(conn: sa.Connection, subscriber_id: int | None, traces: Traces) -> int:
    keys = [row.key for row, _member in person_batches(conn, subscriber_id, traces)]
    if keys:
        conn.execute(batches.update().where(batches.c.key.in_(keys)).values(members=sa.null()))
    return len(keys)


def _scrub_events(conn: sa.Connection, subscriber_id: int | None, traces: Traces) -> int:
    found = person_events(conn, subscriber_id, traces)
    for row in found:
        conn.execute(events.update().where(events.c.id == row.id)
                     .values(scrubbed_event(row._mapping, traces)))
    return len(found)


def scrubbed_event(row: Mapping[Any, Any], traces: Traces) -> dict[str, Any]:
    """The values that replace an event row's texts once its person is erased."""
    return {
        "recipient": ERASED,
        "raw": json.dumps(ERASED),
        "event_id": _scrub_id(row["event_id"], traces),
        # Replaced whole, like the payload it comes from: an address erased before is
        # looked for without its name, which a bounce's diagnostic may quote.
        "reason": ERASED,
        "code": traces.scrub(row["code"]),
        "provider_message_id": traces.scrub(row["provider_message_id"]),
        "message_id": traces.scrub(row["message_id"]),
        "meta": traces.scrub_value(row["meta"]),
    }


def erased_among(conn: sa.Connection, recipients: Iterable[str | None]) -> dict[str, Traces]:
    """Of these recipients (as events name them), those whose address was erased, each with
    the traces to take out of an event about them: a provider's event that arrives after the
    erasure is stored without the address, as if it had been there when it was erased.

    The key is worked out without the validator (a webhook burst is thousands of events):
    lower-cased, the domain in Unicode, as ``parse_address`` keys an address."""
    keys: dict[str, str] = {}
    for recipient in recipients:
        key = _event_key(recipient) if recipient else None
        if recipient and key is not None:
            keys[recipient] = key
    if not keys:
        return {}
    digests = {email_hash(key): key for key in set(keys.values())}
    query = sa.select(suppressions.c.email_hash).where(
        suppressions.c.reason == "erased", suppressions.c.email_hash.in_(list(digests)))
    erased = {digests[d] for d in conn.execute(query).scalars()}
    return {recipient: Traces(recipient, key) for recipient, key in keys.items()
            if key in erased}


def _event_key(recipient: str) -> str | None:
    local, at, domain = recipient.strip().rpartition("@")
    if not at or not local or not domain:
        return None
    if "xn--" in domain.lower():
        try:
            domain = idna.decode(domain)
        except idna.IDNAError:
            return None
    return f"{local}@{domain}".lower()


def _scrub_id(event_id: str, traces: Traces) -> str:
    """An event id that quotes the address becomes a digest of itself: still unique."""
    if not traces.mentions(event_id):
        return event_id
    return "erased:" + hashlib.sha256(event_id.encode("utf-8")).hexdigest()[:40]
