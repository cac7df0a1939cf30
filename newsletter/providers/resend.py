"""Resend: ``POST /emails/batch``, at most 100 messages per request.

Each message carries its own filled-in HTML and text, the list headers and two tags naming
the edition and the subscriber. Resend allows only ASCII letters, digits, ``_`` and ``-`` in
tag values, so the edition key's ``.`` becomes ``_`` (``tag_value``); the subscriber id is
digits already.

Every request carries an ``Idempotency-Key`` made from the edition key and the batch key, so
a resend of the same batch (after a timeout, or by a later run within Resend's 24 hours)
returns the first answer instead of sending again: the transport is idempotent, for
``idempotency_window`` (a day), provided the repeat carries exactly the same body (another body
under a used key is refused with 409 ``invalid_idempotent_request``). The batch is
validated strictly (Resend's default, asked for explicitly with ``x-batch-validation``): one
invalid message refuses the whole request, and nothing of it is sent.

The answer lists one id per message, in order.

Asked what it accepted of a batch (``reconcile``), the transport reads Resend's sent emails
(``GET /emails``, newest first, 100 a page) back to a little before the batch was claimed,
and matches each by its recipient, its subject and when it was created: the list shows
neither tags nor anything else of ours, so the address is all there is to match a row by.
Within the key's 24 hours only "found" is believed (see ``reconcile``); past them, "not found"
is too, while Resend is shown to keep emails older than the batch (its retention is a day on
the free plan).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

import httpx

from ..audience.addresses import envelope_address
from ..config import Config
from ..errors import HeaderError
from ..message.model import Outgoing, Personalized
from ._http import HttpClient, api_client, raise_for_status
from ._json_body import filled_parts, plain
from .base import (
    BatchRejected,
    FatalTransportError,
    Finding,
    LookupFailed,
    Outcome,
    OutcomeKind,
    OutcomeUnknown,
    UnknownBatch,
    Verdict,
    check_batch,
    judge,
    undecided,
)
from .info import ProviderInfo

NAME = "resend"
DEFAULT_BASE_URL = "https://api.resend.com"
PATH = "/emails/batch"
MAX_BATCH = 100
MAX_KEY = 256
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# Errors about the sender that every message shares: every batch would fail alike.
FATAL_NAMES = frozenset({"invalid_from_address", "invalid_api_key", "missing_api_key",
                         "restricted_api_key"})
# 429s that waiting minutes will not cure: the account's sending quota is used up.
QUOTA_NAMES = frozenset({"daily_quota_exceeded", "monthly_quota_exceeded"})

# Resend remembers an idempotency key for 24 hours from its first request. As the ledger does
# (``delivery.ledger.queries.WINDOW_MARGIN``), the last hour of it is not counted on: the key's
# clock starts when the request first reached Resend, and clocks differ.
IDEMPOTENCY_WINDOW = timedelta(hours=24)
WINDOW_MARGIN = timedelta(hours=1)
# The sent-email list: newest first, at most 100 a page, the next page after the id of the
# last email seen while ``has_more``.
LIST_PATH = "/emails"
LIST_LIMIT = 100
# An email is taken for the batch's from this long before the batch was claimed: our clock
# and Resend's differ, and a batch remembered without its claim time has a later stand-in.
LIST_MARGIN = timedelta(hours=1)
# Pages read before giving up (50,000 emails newer than the batch, some four minutes at
# Resend's default of 2 requests a second): past that, "not found" would be a guess.
MAX_PAGES = 500
# Resend does not say how soon a sent email shows in the list; two minutes is assumed (as
# for Postmark). It matters within the key's window only: any batch past it has settled.
DEFAULT_SETTLE = timedelta(minutes=2)
# Resend keeps sent emails for as long as the plan says: 1 day (free), 3 (Pro), 7 (Scale),
# longer by arrangement (its plans as published in 2025; no API says which applies). Past the
# shortest, "not found" counts only once the list is seen to reach back past the batch.
SHORTEST_RETENTION = timedelta(days=1)
Found = dict[int, tuple[str, Any]]
NO_ADDRESS = ("no address to look for in Resend's sent emails (erased, or not one a message "
              "could carry): the list is searchable by address only")


def tag_value(value: str) -> str:
    """``value`` in the characters Resend allows in a tag (others become ``_``)."""
    return _TAG_UNSAFE.sub("_", value)[:256]


def idempotency_key(edition_key: str, batch_key: str) -> str:
    """Stable for the same batch of the same edition; at most 256 characters."""
    key = f"newsletter/{edition_key}/{batch_key}"
    if len(key) > MAX_KEY:
        key = "newsletter/" + hashlib.sha256(f"{edition_key}\0{batch_key}".encode()).hexdigest()
    return key


def build_batch(outgoing: Outgoing, messages: Sequence[Personalized]) -> list[dict[str, Any]]:
    """The batch's messages as the request body's array holds them."""
    return [plain(m) for m in iter_batch(outgoing, messages)]


def iter_batch(outgoing: Outgoing,
               messages: Sequence[Personalized]) -> Iterator[dict[str, Any]]:
    """The batch's messages, one at a time, their parts kept as ``Filled``."""
    for person in messages:
        html, text = filled_parts(outgoing, person)
        body: dict[str, Any] = {
            "from": outgoing.sender.header,
            "to": [person.to],
            "subject": outgoing.subject,
            "html": html,
            "text": text,
            "headers": dict(person.headers),
            "tags": [
                {"name": "edition", "value": tag_value(outgoing.edition_key)},
                {"name": "subscriber_id", "value": tag_value(str(person.recipient.id))},
            ],
        }
        if outgoing.sender.reply_to:
            body["reply_to"] = outgoing.sender.reply_to
        yield body


def request_headers(outgoing: Outgoing, batch_key: str) -> dict[str, str]:
    return {
        "Idempotency-Key": idempotency_key(outgoing.edition_key, batch_key),
        "x-batch-validation": "strict",
    }


def parse_batch(messages: Sequence[Personalized], payload: Any) -> list[Outcome]:
    """Map a 200 answer's ids onto the messages, in order."""
    data = payload.get("data") if isinstance(payload, dict) else None
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if (not isinstance(data, list) or len(data) != len(messages) or errors
            or not all(isinstance(item, dict) and item.get("id") for item in data)):
        raise OutcomeUnknown(NAME, "answer does not list one id per message",
                             status=200, body=json.dumps(payload)[:500])
    return [Outcome(m.recipient.id, OutcomeKind.SENT, message_id=str(item["id"]), raw=item)
            for m, item in zip(messages, data, strict=True)]


def error_name(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return ""
    if not isinstance(payload, dict):
        return ""
    return str(payload.get("name") or payload.get("type") or "")


def check_error(client: HttpClient, response: httpx.Response) -> None:
    """Refine a final non-200 answer by Resend's error name."""
    status, name = response.status_code, error_name(response)
    if name in FATAL_NAMES or status in (404, 405):
        raise client.error(FatalTransportError, name or "endpoint not found (check "
                           "provider_base_url)", response)
    if status == 409:
        # concurrent_idempotent_requests: a request with this key, which only we use, is
        # still running at Resend and may yet be accepted; invalid_idempotent_request: the key
        # already carried another body, which may or may not have held these recipients.
        # Either way the outcome is unknown, and only a repeat under the same key is safe.
        raise client.error(OutcomeUnknown, name or "idempotency conflict", response)
    if status in (400, 422):
        raise client.error(BatchRejected, name or "request refused", response)
    raise_for_status(client, response)


def list_params(limit: int = LIST_LIMIT, after: str | None = None) -> dict[str, str]:
    """The query of one page of the sent-email list: the first (newest) page, or the one
    after the email whose id is ``after``."""
    params = {"limit": str(limit)}
    if after is not None:
        params["after"] = after
    return params


def list_page(payload: Any) -> tuple[list[dict[str, Any]], bool]:
    """The emails of one page and whether more follow; ``LookupFailed`` for any other shape,
    since nothing may be concluded from a page we cannot read whole."""
    data = payload.get("data") if isinstance(payload, dict) else None
    more = payload.get("has_more") if isinstance(payload, dict) else None
    if (not isinstance(data, list) or not isinstance(more, bool) or not all(
            isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"] for e in data)):
        raise LookupFailed(NAME, "list answer holds no list of emails", status=200,
                           body=json.dumps(payload)[:500])
    return data, more


def created_at(email: dict[str, Any]) -> datetime:
    """When Resend created ``email`` (the spec writes ``2023-04-03 22:13:42.674981+00``, the
    guide ``2023-04-03T22:13:42.674981+00:00``); the paging stops by it, so an email without
    a time we can read is ``LookupFailed``."""
    value = email.get("created_at")
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise LookupFailed(NAME, f"email {email.get('id')} has no readable created_at",
                           status=200, body=json.dumps(email)[:500])
    return moment


def address_key(text: str) -> str | None:
    """An address as the list or the ledger writes it (bare or ``Name <addr>``, the domain
    Unicode or IDNA, any case) in one comparable form; None for what is no address."""
    _, address = parseaddr(text)
    if "@" not in address:
        return None
    try:
        return envelope_address(address).lower()
    except HeaderError:
        return None


def rows_by_address(batch: UnknownBatch) -> dict[str, list[int]]:
    """The batch's rows by the address to look for (an erased row has none)."""
    rows: dict[str, list[int]] = {}
    for row in batch.rows:
        key = address_key(row.email) if row.email else None
        if key is not None:
            rows.setdefault(key, []).append(row.subscriber_id)
    return rows


def match_emails(emails: Iterable[dict[str, Any]], *, subject: str, since: datetime,
                 rows: dict[str, list[int]]) -> Found:
    """Subscriber id -> (Resend's email id, its record) for each email of one page that went
    to a row's address (``rows_by_address``) with the edition's ``subject``, created ``since``.

    The address decides because nothing better exists: neither the list nor a single email
    (``GET /emails/{id}``) shows the tags naming the edition and the subscriber. With the
    subject and the time, a match is the edition, to that person, since the batch: whichever
    request carried it, they have it, and sending it again would be the duplicate."""
    found: Found = {}
    for email in emails:
        if not same_text(email.get("subject"), subject) or created_at(email) < since:
            continue
        recipients = email.get("to")
        for recipient in recipients if isinstance(recipients, list) else [recipients]:
            key = address_key(recipient) if isinstance(recipient, str) else None
            for subscriber in rows.get(key, []) if key else []:
                found.setdefault(subscriber, (email["id"], email))
    return found


def same_text(listed: Any, ours: str) -> bool:
    """Whether the list's subject is ours, whatever Unicode form or spacing it came back in:
    a near miss taken for "not sent" would mail the person again."""
    if not isinstance(listed, str):
        return False
    return _plain(listed) == _plain(ours)


def _plain(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def hold(findings: list[Finding], reason: str,
         only: set[int] | None = None) -> list[Finding]:
    """``findings`` with each "not accepted" (of the rows in ``only``, or of all) made
    undecided for ``reason``: "found" stands whatever else holds."""
    return [Finding(f.subscriber_id, Verdict.UNDECIDED, reason=reason)
            if f.verdict is Verdict.NOT_ACCEPTED and (only is None or f.subscriber_id in only)
            else f for f in findings]


class ResendTransport:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = True
    # A batch first sent longer ago than this is repeated only on request, as a plain unknown.
    idempotency_window = IDEMPOTENCY_WINDOW
    settle: timedelta

    def __init__(self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None,
                 list_limit: int = LIST_LIMIT, **client_options: Any):
        if not 1 <= list_limit <= LIST_LIMIT:
            raise ValueError(f"list_limit must be 1 to {LIST_LIMIT}")
        self.list_limit = list_limit  # smaller only in tests, to page through few emails
        self.settle = (timedelta(seconds=config.reconcile_settle)
                       if config.reconcile_settle > 0 else DEFAULT_SETTLE)
        self.client = api_client(
            NAME, config, DEFAULT_BASE_URL, bearer=True, transport=transport,
            is_fatal=lambda response: error_name(response) in QUOTA_NAMES, **client_options)

    async def send_batch(self, outgoing: Outgoing, messages: Sequence[Personalized], *,
                         batch_key: str) -> list[Outcome]:
        check_batch(self, messages)
        response = await self.client.request(
            "POST", PATH, json_items=iter_batch(outgoing, messages),
            headers=request_headers(outgoing, batch_key),
            idempotent=True,
        )
        if response.status_code != 200:
            check_error(self.client, response)
            raise self.client.error(FatalTransportError, "unexpected answer", response)
        try:
            payload = response.json()
        except ValueError:
            raise self.client.error(OutcomeUnknown, "answer is not JSON", response) from None
        return parse_batch(messages, payload)

    async def reconcile(self, batch: UnknownBatch, *, now: datetime) -> list[Finding]:
        """What Resend's sent emails say of each row of ``batch``.

        Within the key's window (24 hours, less ``WINDOW_MARGIN``) a row not found stays
        undecided, however settled. There the batch is best repeated under its key, which the
        send does (``delivery.ledger.claiming.claim_unknown``) and Resend answers with the
        first request's result, mailing nobody twice. A row found "not accepted" would instead
        go back to pending under no key (``delivery.ledger.reconciling.apply``), to go out in
        a new batch under a new key that Resend would send even if the first request had been
        taken and the list did not show it (not yet, or to an address changed since). So "not
        accepted" is said only past the window, where a repeat under the key is no longer
        safe either, and only while the list reaches back past the batch.
        """
        if not batch.rows:
            return []
        rows = rows_by_address(batch)
        searched = {s for ids in rows.values() for s in ids}
        if not searched:
            return undecided(batch, NO_ADDRESS)
        found, reached = await self._search(batch, rows)
        where = "Resend's sent emails"
        findings = judge(batch, found, settle=self.settle, now=now, where=where)
        findings = hold(findings, NO_ADDRESS, {r.subscriber_id for r in batch.rows} - searched)
        age = now - batch.sent_at
        if age <= self.idempotency_window - WINDOW_MARGIN:
            past = batch.sent_at + self.idempotency_window - WINDOW_MARGIN
            held = hold(findings, f"not in {where}; while Resend keeps the batch's "
                        "idempotency key only a repeat under it is safe (Resend never sends "
                        f"that twice); decided from the list after "
                        f"{past.strftime('%Y-%m-%d %H:%M:%S UTC')}")
            return [dataclasses.replace(f, final=True) if f.verdict is Verdict.UNDECIDED
                    else f for f in held]
        if not reached and age > SHORTEST_RETENTION:
            return hold(findings, f"not in {where}, but sent {age / timedelta(days=1):.1f} "
                        "days ago and Resend lists nothing older: its retention (a day on the "
                        "free plan) may have removed them")
        return findings

    async def _search(self, batch: UnknownBatch,
                      rows: dict[str, list[int]]) -> tuple[Found, bool]:
        """The batch's emails in the list, newest first, page after page, until an email
        older than the batch shows (then also True: the list still keeps what the batch
        sent), until every row is found (True: nothing is left to prove), or to its end."""
        since = batch.sent_at - LIST_MARGIN
        wanted = sum(len(ids) for ids in rows.values())
        found: Found = {}
        after = None
        for _ in range(MAX_PAGES):
            emails, more = list_page(await self._get(list_params(self.list_limit, after)))
            for subscriber, hit in match_emails(emails, subject=batch.subject, since=since,
                                                rows=rows).items():
                found.setdefault(subscriber, hit)
            if len(found) == wanted or any(created_at(e) < since for e in emails):
                return found, True
            if not more:
                return found, False
            if not emails:
                raise LookupFailed(NAME, "list answer says more emails follow, but shows "
                                   "none to page after")
            after = str(emails[-1]["id"])
        raise LookupFailed(NAME, f"batch {batch.key}: more than {MAX_PAGES:,} pages of sent "
                           "emails are newer than the batch; not read further")

    async def _get(self, params: dict[str, str]) -> Any:
        return await self.client.lookup(LIST_PATH, params, what="sent-email list")

    async def aclose(self) -> None:
        await self.client.aclose()


INFO = ProviderInfo(
    name=NAME, transport=ResendTransport, settings=("provider_api_key", "provider_base_url"),
    default_endpoint=DEFAULT_BASE_URL, webhook="resend", reconciles="api")
