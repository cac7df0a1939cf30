"""Postmark: ``POST /email/batch``, at most 500 messages per request.

Each message carries its own filled-in HTML and text, the list headers, the message stream
(newsletters belong on a broadcast stream) and metadata naming the edition, the subscriber
and the batch. The answer holds one result per message, in order: ErrorCode 0 is sent; 406
(inactive recipient) and 300 (invalid request for that message) fail that recipient only;
the account and sender errors below stop the whole send.

Asked what it accepted of a batch (``reconcile``), the transport searches the outbound
messages (``GET /messages/outbound``) by the batch's metadata on its stream and matches each
result by the edition and subscriber id it carried, never by address. Postmark keeps messages
for its retention period only (45 days unless changed, 7 at the least), so "not found" in an
older batch means nothing until a message older than the batch is shown to be kept still.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from ..config import Config
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
    check_batch,
    judge,
    settled,
    undecided,
)
from .info import ProviderInfo

NAME = "postmark"
DEFAULT_BASE_URL = "https://api.postmarkapp.com"
MAX_BATCH = 500
DEFAULT_STREAM = "broadcast"  # the stream Postmark creates for newsletters
INACTIVE_RECIPIENT = 406
# Bad token, not allowed to send, account pending, account may not send; and a sender
# signature that is missing or unconfirmed, which fails every message alike.
FATAL_CODES = frozenset({10, 400, 401, 405, 412, 413})

# The outbound message search (Messages API): at most 500 a page, and count + offset may not
# pass 10,000. Its dates are naive Eastern times.
SEARCH_PATH = "/messages/outbound"
SEARCH_PAGE = 500
SEARCH_CAP = 10_000
EASTERN = ZoneInfo("America/New_York")
# Widens the searched window on both sides: our clock and Postmark's may differ, and a naive
# Eastern time names two moments in the hour daylight saving time ends. A message carrying
# the batch's key is the batch's whenever Postmark received it.
SEARCH_MARGIN = timedelta(hours=1)
DEFAULT_SETTLE = timedelta(minutes=2)
RETENTION = timedelta(days=45)           # Postmark's default retention of outbound messages
SHORTEST_RETENTION = timedelta(days=7)   # the least a server's retention can be set to


def build_batch(outgoing: Outgoing, messages: Sequence[Personalized], stream: str, *,
                batch_key: str) -> list[dict[str, Any]]:
    """The batch's messages as the request body's array holds them."""
    return [plain(m) for m in iter_batch(outgoing, messages, stream, batch_key=batch_key)]


def iter_batch(outgoing: Outgoing, messages: Sequence[Personalized], stream: str, *,
               batch_key: str) -> Iterator[dict[str, Any]]:
    """The batch's messages, one at a time, their parts kept as ``Filled``. The metadata
    names the batch too, so that a search finds the batch's messages by it (Postmark allows
    10 fields, keys of up to 20 characters and values of up to 80)."""
    for person in messages:
        html, text = filled_parts(outgoing, person)
        body: dict[str, Any] = {
            "From": outgoing.sender.header,
            "To": person.to,
            "Subject": outgoing.subject,
            "HtmlBody": html,
            "TextBody": text,
            "Headers": [{"Name": k, "Value": v} for k, v in person.headers.items()],
            "MessageStream": stream,
            "Metadata": {"edition": outgoing.edition_key,
                         "subscriber_id": str(person.recipient.id),
                         "batch": batch_key},
        }
        if outgoing.sender.reply_to:
            body["ReplyTo"] = outgoing.sender.reply_to
        yield body


def parse_batch(messages: Sequence[Personalized], payload: Any) -> list[Outcome]:
    """Map a 200 answer's per-message results onto the messages, in order."""
    if not isinstance(payload, list) or len(payload) != len(messages):
        raise OutcomeUnknown(NAME, "answer does not list one result per message",
                             status=200, body=json.dumps(payload)[:500])
    results = []
    for person, item in zip(messages, payload, strict=True):
        recipient = person.recipient
        code = int(item.get("ErrorCode", -1))
        text = str(item.get("Message", ""))
        if code == 0:
            results.append(Outcome(recipient.id, OutcomeKind.SENT,
                                   message_id=str(item.get("MessageID", "")), raw=item))
        elif code in FATAL_CODES:
            results.append(Outcome(recipient.id, OutcomeKind.UNTRIED, code=str(code),
                                   reason=text, raw=item, fatal=True))
        else:
            results.append(Outcome(recipient.id, OutcomeKind.FAILED, code=str(code),
                                   reason=text, bad_address=code == INACTIVE_RECIPIENT,
                                   raw=item))
    return results


def check_error(client: HttpClient, response: httpx.Response) -> None:
    """Refine a non-200 answer: Postmark's 422 names its own ErrorCode."""
    if response.status_code == 422:
        try:
            code = int(response.json().get("ErrorCode", -1))
        except (ValueError, AttributeError):
            code = -1
        cls = FatalTransportError if code in FATAL_CODES else BatchRejected
        raise client.error(cls, f"error {code}", response)
    raise_for_status(client, response)


def eastern(moment: datetime) -> str:
    """``moment`` as the search's dates are written: naive US Eastern time, to the second."""
    return moment.astimezone(EASTERN).strftime("%Y-%m-%dT%H:%M:%S")


def search_params(batch: UnknownBatch, stream: str, offset: int, *, now: datetime,
                  count: int = SEARCH_PAGE) -> dict[str, str]:
    """The query of one page of the search for ``batch``'s messages: by the batch key in
    their metadata (Postmark filters by one metadata field at a time), on the send's stream,
    received between a little before the batch was claimed and a little after ``now``."""
    return {
        "count": str(count),
        "offset": str(offset),
        "messagestream": stream,
        "metadata_batch": batch.key,
        "fromdate": eastern(batch.sent_at - SEARCH_MARGIN),
        "todate": eastern(now + SEARCH_MARGIN),
    }


def older_params(moment: datetime) -> dict[str, str]:
    """The query for any one message Postmark received before ``moment``, on any stream of
    the server: shown, the server's retention reaches back past ``moment``."""
    return {"count": "1", "offset": "0", "todate": eastern(moment - SEARCH_MARGIN)}


def search_messages(payload: Any) -> list[dict[str, Any]]:
    """The messages of one page of search results; ``LookupFailed`` for any other shape."""
    messages = payload.get("Messages") if isinstance(payload, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise LookupFailed(NAME, "search answer holds no list of messages", status=200,
                           body=json.dumps(payload)[:500])
    return messages


def parse_search(payload: Any, *, edition_key: str,
                 batch_key: str) -> dict[int, tuple[str, Any]]:
    """Subscriber id -> (Postmark's MessageID, its record) for each message of one page that
    carries our edition key and batch key; a message of another edition (or batch) is not
    ours, whatever its recipient."""
    found: dict[int, tuple[str, Any]] = {}
    for item in search_messages(payload):
        metadata = item.get("Metadata")
        if not isinstance(metadata, dict):
            continue
        if metadata.get("edition") != edition_key or metadata.get("batch") != batch_key:
            continue
        subscriber = metadata.get("subscriber_id")
        if not isinstance(subscriber, str) or not subscriber.isdigit():
            continue
        # Results come newest first: the first one seen for a subscriber is kept.
        found.setdefault(int(subscriber), (str(item.get("MessageID") or ""), item))
    return found


def total_count(payload: Any) -> int | None:
    total = payload.get("TotalCount") if isinstance(payload, dict) else None
    return total if isinstance(total, int) else None


class PostmarkTransport:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = False
    settle: timedelta

    def __init__(self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None,
                 search_page: int = SEARCH_PAGE, **client_options: Any):
        if not 1 <= search_page <= SEARCH_PAGE:
            raise ValueError(f"search_page must be 1 to {SEARCH_PAGE}")
        self.stream = config.provider_stream or DEFAULT_STREAM
        self.settle = (timedelta(seconds=config.reconcile_settle)
                       if config.reconcile_settle > 0 else DEFAULT_SETTLE)
        self.search_page = search_page  # smaller only in tests, to page through few messages
        self.client = api_client(
            NAME, config, DEFAULT_BASE_URL, transport=transport,
            headers={"X-Postmark-Server-Token": config.provider_api_key}, **client_options)

    async def send_batch(self, outgoing: Outgoing, messages: Sequence[Personalized], *,
                         batch_key: str) -> list[Outcome]:
        check_batch(self, messages)
        items = iter_batch(outgoing, messages, self.stream, batch_key=batch_key)
        response = await self.client.request("POST", "/email/batch", json_items=items)
        if response.status_code != 200:
            check_error(self.client, response)
        try:
            payload = response.json()
        except ValueError:
            raise self.client.error(OutcomeUnknown, "answer is not JSON", response) from None
        return parse_batch(messages, payload)

    async def reconcile(self, batch: UnknownBatch, *, now: datetime) -> list[Finding]:
        """What Postmark's outbound messages say of each row of ``batch``."""
        if not batch.rows:
            return []
        age = now - batch.sent_at
        if age > RETENTION:
            return undecided(batch, f"sent {age.days} days ago: Postmark keeps outbound "
                             f"messages {RETENTION.days} days unless its retention was "
                             "raised, so not finding them proves nothing")
        found = await self._search(batch, now)
        # Nothing found of a batch older than the shortest retention: it may have been
        # purged, unless Postmark still shows a message older than the batch.
        if (not found and settled(batch, self.settle, now) and age > SHORTEST_RETENTION
                and not await self._keeps_messages_before(batch.sent_at)):
            return undecided(batch, f"not in Postmark's outbound messages, but sent "
                             f"{age.days} days ago and Postmark shows nothing older: its "
                             "retention may have purged them")
        return judge(batch, found, settle=self.settle, now=now,
                     where=f"Postmark's outbound messages (stream {self.stream})")

    async def _search(self, batch: UnknownBatch, now: datetime) -> dict[int, tuple[str, Any]]:
        """Every page of the batch's search, while the pages are full."""
        found: dict[int, tuple[str, Any]] = {}
        offset = 0
        while True:
            if offset + self.search_page > SEARCH_CAP:
                raise LookupFailed(NAME, f"batch {batch.key}: more messages match than the "
                                   f"{SEARCH_CAP:,} Postmark's search shows (count + offset)")
            payload = await self._get(search_params(batch, self.stream, offset, now=now,
                                                    count=self.search_page))
            for subscriber, hit in parse_search(payload, edition_key=batch.edition_key,
                                                batch_key=batch.key).items():
                found.setdefault(subscriber, hit)
            offset += self.search_page
            total = total_count(payload)
            if len(search_messages(payload)) < self.search_page or (
                    total is not None and offset >= total):
                return found

    async def _keeps_messages_before(self, moment: datetime) -> bool:
        payload = await self._get(older_params(moment))
        return bool(search_messages(payload)) or bool(total_count(payload))

    async def _get(self, params: dict[str, str]) -> Any:
        return await self.client.lookup(SEARCH_PATH, params, what="outbound message search")

    async def aclose(self) -> None:
        await self.client.aclose()


INFO = ProviderInfo(
    name=NAME, transport=PostmarkTransport,
    settings=("provider_api_key", "provider_base_url", "provider_stream"),
    default_endpoint=DEFAULT_BASE_URL, webhook="postmark", reconciles="api")
