"""Which subscriber, and which send, an event is about; or that it is not about ours.

Tried in this order, the surest first:

1. the unsubscribe token the event carries (mailto requests, reports quoting our
   List-Unsubscribe), checked with the secret key: the only way a mailto request is matched
   (put down to the message named, or else to the newest send that reached the subscriber);
2. the provider's message id as the ledger recorded it (``deliveries.message_id``); SendGrid
   and Mailgun answer one id per request, so several rows may share it, and the recipient's
   address (or the subscriber_id metadata) picks the row;
3. our own Message-ID ``<week.subscriber.hash@domain>``, when that send has that subscriber and
   that content hash;
4. the ``edition`` and ``subscriber_id`` metadata we put into the message, likewise checked;
5. the address alone, for an event that names no message at all (a suppression a provider
   reports without a message id), and only if we ever sent that subscriber a message; the
   event is put down to the newest send that reached them.

An event that names a message (any of 2-4) we cannot find is not ours: it is stored unmatched
and touches nobody; so is one whose recipient is a readable address other than the matched
subscriber's (a report may list several recipients of one returned message). Every lookup
is batched: a request's events cost a few queries, not a few per event.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..audience.addresses import parse_address
from ..audience.tokens import BadToken, read_token
from ..errors import SubscriberError
from . import ids
from . import match_queries as q
from .events import Event, EventKind

_PLAIN_ADDRESS = re.compile(
    r"^[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")


@dataclass(frozen=True)
class Match:
    subscriber_id: int | None = None
    send_id: int | None = None
    by: str = ""  # token | ledger | message_id | metadata | address | "" (not ours)


NOT_OURS = Match()


def match_events(conn: sa.Connection, events: Sequence[Event], *,
                 secrets: str | Sequence[str]) -> list[Match]:
    """One Match per event; ``secrets``: the token signing key, or the current and previous."""
    lookup = _Lookup(conn, events, secrets)
    return [lookup.match(event) for event in events]


def is_mailto_request(event: Event) -> bool:
    return event.provider == "mailbox" and event.kind == EventKind.UNSUBSCRIBED


def address_key(address: str) -> str:
    """The list's unique form of an address (IDN domains in either form); '' if not one.

    An address the list could not hold (say, with a non-ASCII local part) gets a key no
    subscriber has, so that it is never taken for one of them.
    """
    if not address or "@" not in address:
        return ""
    if _PLAIN_ADDRESS.match(address) and "xn--" not in address.lower():
        # What parse_address makes of a plain ASCII address, without its cost (the
        # validator is most of a large batch's time); one that is not valid matches no
        # subscriber's key either.
        return address.lower()
    try:
        return parse_address(address).key
    except SubscriberError:
        return "\0not-on-the-list:" + address


def _int(value: object) -> int | None:
    text = str(value).strip() if value is not None else ""
    # ASCII digits only: "²" is a digit to str.isdigit, but not to int().
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else None


def _edition(value: str) -> tuple[str, str]:
    """``2026-W47.0123456789ab`` as (week, hash prefix)."""
    week, _, prefix = value.partition(".")
    return week, prefix


class _Lookup:
    """Everything the events of one batch can be matched against, loaded in a few queries."""

    def __init__(self, conn: sa.Connection, events: Sequence[Event],
                 secrets: str | Sequence[str]):
        self.tokens = {t: _token(secrets, t) for t in
                       {e.metadata.get("unsubscribe_token", "") for e in events} if t}
        token_ids = {i for i in self.tokens.values() if i is not None}
        self.keys = {e.recipient: address_key(e.recipient) for e in events if e.recipient}
        self.subscribers: dict[int, str] = {}  # id -> email key, of those an event may name
        self._ledger(conn, events)
        # What the ledger did not settle: our Message-ID, the metadata, the address.
        rest = [e for e in events if self._by_ledger(e) is None]
        self.refs = {e.message_id: ids.parse_message_id(e.message_id) for e in rest}
        weeks = {r.week for r in self.refs.values() if r} | {
            _edition(e.metadata["edition"])[0] for e in rest if e.metadata.get("edition")}
        self.sends = q.sends_by_week(conn, weeks)
        candidates = {(s, r.subscriber_id) for r in self.refs.values() if r
                      for s in self._send_ids(r.week)}
        candidates |= {(s, sid) for e in rest for s in self._send_ids(
            _edition(e.metadata.get("edition", ""))[0])
            if (sid := _int(e.metadata.get("subscriber_id"))) is not None}
        self.pairs = q.existing_pairs(conn, candidates)
        self.subscribers.update(q.keys_by_id(
            conn, (token_ids | {sub for _, sub in self.pairs}) - set(self.subscribers)))
        unnamed = [e for e in rest if not _names_a_message(e)]
        self.by_key = q.ids_by_key(conn, {self.keys.get(e.recipient, "") for e in unnamed})
        # The newest send reaching a subscriber: only for the events that may need it (a
        # token, or an address naming no message).
        by_address = {i for e in unnamed
                      if (i := self.by_key.get(self.keys.get(e.recipient, ""))) is not None}
        self.last_sent = q.last_sent(conn, token_ids | by_address)

    def _ledger(self, conn: sa.Connection, events: Sequence[Event]) -> None:
        """The ledger rows the events' message ids name: one row per id, or for an id shared
        by a request's recipients, the row of the subscriber the event names by id or address."""
        single, shared = q.ledger_ids(conn, {v for e in events for v in _ledger_forms(e)})
        self.single = {value: (send, sub) for value, (send, sub, _) in single.items()}
        self.subscribers.update({sub: key for send, sub, key in single.values()})
        named = {i for e in events if (i := _int(e.metadata.get("subscriber_id"))) is not None}
        self.shared_by_id: dict[tuple[str, int], tuple[int, int]] = {}
        self.shared_by_key: dict[tuple[str, str], tuple[int, int]] = {}
        for value, send, sub, key in q.shared_rows(conn, shared, named,
                                                   set(self.keys.values())):
            self.shared_by_id[(value, sub)] = self.shared_by_key[(value, key)] = (send, sub)
            self.subscribers[sub] = key

    def match(self, event: Event) -> Match:
        found = self._match(event)
        if found.by in ("", "address") or is_mailto_request(event):
            return found
        # A report about another mailbox than the subscriber's (a DSN listing several
        # recipients of one returned message) is not about them. An unreadable or redacted
        # recipient says nothing either way.
        key = self.keys.get(event.recipient, "")
        if key and found.subscriber_id is not None and \
                self.subscribers.get(found.subscriber_id, key) != key:
            return NOT_OURS
        return found

    def _match(self, event: Event) -> Match:
        token_id = self.tokens.get(event.metadata.get("unsubscribe_token", ""))
        if token_id is not None and token_id not in self.subscribers:
            token_id = None  # erased since
        if is_mailto_request(event):
            return self._by_token(token_id) if token_id is not None else NOT_OURS
        for how, find in (("ledger", self._by_ledger), ("message_id", self._by_message_id),
                          ("metadata", self._by_metadata)):
            hit = find(event)
            if hit is not None:
                send_id, subscriber_id = hit
                if token_id is None:
                    return Match(subscriber_id, send_id, how)
                if token_id == subscriber_id:
                    return Match(subscriber_id, send_id, "token")
                return self._by_token(token_id)  # the signed token wins
        if token_id is not None:
            return self._by_token(token_id)
        if _names_a_message(event):
            return NOT_OURS
        by_address = self.by_key.get(self.keys.get(event.recipient, ""))
        if by_address is not None and by_address in self.last_sent:
            return Match(by_address, self.last_sent[by_address], "address")
        return NOT_OURS

    # -- per event --------------------------------------------------------------------------

    def _by_token(self, subscriber_id: int) -> Match:
        # The token names the subscriber only: put it down to the newest send they received.
        return Match(subscriber_id, self.last_sent.get(subscriber_id), "token")

    def _by_ledger(self, event: Event) -> tuple[int, int] | None:
        wanted = _int(event.metadata.get("subscriber_id"))
        key = self.keys.get(event.recipient, "")
        for value in _ledger_forms(event):
            by_id = self.shared_by_id.get((value, wanted)) if wanted is not None else None
            hit = self.single.get(value) or by_id or self.shared_by_key.get((value, key))
            if hit is not None:
                return hit
        return None

    def _by_message_id(self, event: Event) -> tuple[int, int] | None:
        ref = self.refs.get(event.message_id)
        if ref is None:
            return None
        for send_id, content_hash in self.sends.get(ref.week, []):
            if content_hash.startswith(ref.content_hash) and \
                    (send_id, ref.subscriber_id) in self.pairs:
                return send_id, ref.subscriber_id
        return None

    def _by_metadata(self, event: Event) -> tuple[int, int] | None:
        week, prefix = _edition(event.metadata.get("edition", ""))
        subscriber_id = _int(event.metadata.get("subscriber_id"))
        if not week or not prefix or subscriber_id is None:
            return None
        for send_id, content_hash in self.sends.get(week, []):
            if content_hash.startswith(prefix) and (send_id, subscriber_id) in self.pairs:
                return send_id, subscriber_id
        return None

    def _send_ids(self, week: str) -> list[int]:
        return [send_id for send_id, _ in self.sends.get(week, [])]


def _token(secrets: str | Sequence[str], token: str) -> int | None:
    try:
        return read_token(secrets, "unsubscribe", token)
    except BadToken:
        return None


def _ledger_forms(event: Event) -> list[str]:
    """The forms in which the ledger may hold this event's message: the provider's id with and
    without angle brackets (Mailgun answers ``<id>`` and reports ``id``), and our Message-ID
    (what SMTP and eml record)."""
    forms = []
    if event.provider_message_id:
        bare = ids.bare(event.provider_message_id)
        forms += [bare, f"<{bare}>"]
    if event.message_id:
        forms.append(event.message_id)
    return [f for f in forms if f and f != "<>"]


def _names_a_message(event: Event) -> bool:
    return bool(event.provider_message_id or event.message_id
                or event.metadata.get("edition") or event.metadata.get("subscriber_id"))

