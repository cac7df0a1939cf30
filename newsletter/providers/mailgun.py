"""Mailgun: ``POST /v3/{mailgun_domain}/messages``, at most 1000 recipients per request.

One multipart/form-data request carries the edition's HTML and text once, ``to`` repeated for
each recipient, and ``recipient-variables``: a JSON object from each address to that
recipient's values. With recipient variables present Mailgun sends one message per ``to``
and replaces ``%recipient.KEY%`` in the body, the headers and ``v:`` variables.

Keys are ``nl<nonce>h<i>`` (the HTML-escaped value of field i), ``nl<nonce>t<i>`` (its raw
value, for the text part), ``nl<nonce>id`` (the subscriber id) and ``nl<nonce>x<j>`` (header
j). The nonce is 8 hex digits chosen to occur in no literal part of the content, the subject
or any value, so no text of the edition can be mistaken for one of our placeholders.

Headers from the personalizer go in as ``h:`` fields: a header whose value is the same for
every recipient of the request as it is, the others (List-Unsubscribe) through a recipient
variable. ``v:edition`` and ``v:subscriber_id`` reach Mailgun's events and webhooks as
``user-variables``; Mailgun also shows them to the recipient in ``X-Mailgun-Variables``, so
they hold nothing private.

The answer is 200 ``{"id": ..., "message": "Queued. Thank you."}``, one id for all.

Asked what it accepted of a batch (``reconcile``), the transport reads Mailgun's ``accepted``
events (``GET /v3/{mailgun_domain}/events``) around the time the batch was sent, following
``paging.next`` until a page comes back empty (or every row is found in its batch's
events), and matches each event by the edition and subscriber id its ``user-variables``
carry (``v:batch`` names the batch too), never by the address alone. A few rows are asked
about one recipient at a time; of more, three of them: Mailgun takes a request whole, so one
of its messages accepted means all were. Mailgun keeps events for a few days only, so an
older batch stays undecided.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from ..audience.addresses import envelope_address
from ..config import Config
from ..errors import ConfigError, HeaderError
from ..message.model import Outgoing, Personalized
from ._http import HttpClient, raise_for_status
from .base import (
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
    pick_nonce,
    undecided,
)
from .info import ProviderInfo

NAME = "mailgun"
DEFAULT_BASE_URL = "https://api.mailgun.net"   # EU: https://api.eu.mailgun.net
MAX_BATCH = 1000
Form = list[tuple[str, str]]
Found = dict[int, tuple[str, Any]]

# The events API: at most 300 events a page (the spec's ``limit``, "300 max").
EVENTS_LIMIT = 300
# Up to this many rows, each recipient is asked about; more, a sample of them (``sample``):
# Mailgun accepts a request whole, so what one recipient's events show goes for the batch. A
# scan of the whole window, which reads every message of the send accepted around the same
# time, is left for a batch with a row that has no address to ask by (erased).
PER_ROW_MAX = 20
# The window searched: from a little before the batch was claimed (clocks differ) to an hour
# after, which outlasts every retry of the request (``_http.RetryPolicy``).
WINDOW_BEFORE = timedelta(seconds=60)
WINDOW_AFTER = timedelta(hours=1)
# Mailgun's event polling guide (documentation.mailgun.com/docs/mailgun/user-manual/events/
# event-polling) says events reach its storage by different routes and may be indexed late,
# and counts a page as trustworthy only once its events are older than a threshold, giving
# half an hour as the example: "not found" means "not accepted" only after that.
DEFAULT_SETTLE = timedelta(minutes=30)
# The API reference promises events for "at least 3 days"; the user manual's tracking page
# says at least 2 for free accounts (30 for paid ones). The shorter is the one we can rely on.
RETENTION = timedelta(days=2)
# A provider that keeps handing out next pages is not believed past this (300,000 events).
MAX_PAGES = 1000


def messages_path(domain: str) -> str:
    if not domain or "/" in domain or "%2f" in domain.lower():
        raise ConfigError(f"config key 'mailgun_domain' is not a domain name: {domain!r}")
    return f"/v3/{quote(domain, safe='')}/messages"


def base_url(configured: str) -> str:
    """The API root; a configured URL ending in ``/v3`` (as Mailgun's docs show it) is fine."""
    url = (configured or DEFAULT_BASE_URL).rstrip("/")
    return url[: -len("/v3")] if url.endswith("/v3") else url


def build_form(outgoing: Outgoing, batch: Sequence[Personalized], *, batch_key: str) -> Form:
    """The form fields, in order; ``to`` repeats, every other name occurs once. Recipient
    variables are keyed by address, so the batch holds no address twice (the sender refuses
    the second before the batch gets here). ``v:batch`` names the batch in Mailgun's events,
    which ``reconcile`` reads."""
    sender = outgoing.sender.header

    texts = [*outgoing.html.literals, *outgoing.text.literals, outgoing.subject, sender,
             batch_key]
    for person in batch:
        texts += person.values.values()
        texts += person.html_values.values()
        texts += person.headers.values()
    nonce = pick_nonce(outgoing.content_hash, texts)

    prefix = f"nl{nonce}"
    html_keys = {f: f"{prefix}h{i}" for i, f in enumerate(sorted(set(outgoing.html.fields)))}
    text_keys = {f: f"{prefix}t{i}" for i, f in enumerate(sorted(set(outgoing.text.fields)))}
    names = list(dict.fromkeys(name for person in batch for name in person.headers))
    varying = [n for n in names if len({person.headers.get(n) for person in batch}) > 1]
    header_keys = {n: f"{prefix}x{j}" for j, n in enumerate(varying)}
    id_key = f"{prefix}id"

    variables: dict[str, dict[str, str]] = {}
    for person in batch:
        mine = {key: person.html_values[f] for f, key in html_keys.items()}
        mine.update({key: person.values[f] for f, key in text_keys.items()})
        mine.update({key: person.headers.get(n, "") for n, key in header_keys.items()})
        mine[id_key] = str(person.recipient.id)
        variables[person.email] = mine

    form: Form = [("from", sender)]
    form += [("to", person.to) for person in batch]
    form += [
        ("subject", outgoing.subject),
        ("text", outgoing.text.fill({f: f"%recipient.{k}%" for f, k in text_keys.items()})),
        ("html", outgoing.html.fill({f: f"%recipient.{k}%" for f, k in html_keys.items()})),
        ("recipient-variables", json.dumps(variables, ensure_ascii=False,
                                           separators=(",", ":"))),
    ]
    first = batch[0].headers
    for name in names:
        value = f"%recipient.{header_keys[name]}%" if name in header_keys else first[name]
        form.append((f"h:{name}", value))
    if outgoing.sender.reply_to:
        form.append(("h:Reply-To", outgoing.sender.reply_to))
    form += [("v:edition", outgoing.edition_key), ("v:subscriber_id", f"%recipient.{id_key}%"),
             ("v:batch", batch_key)]
    return form


def multipart(form: Form) -> list[tuple[str, tuple[None, bytes]]]:
    """httpx ``files=``: plain form fields (no file name), sent as multipart/form-data."""
    return [(name, (None, value.encode("utf-8"))) for name, value in form]


def parse_queued(messages: Sequence[Personalized], payload: Any) -> list[Outcome]:
    """A 200 answer: every recipient was queued under the one message id."""
    message_id = payload.get("id") if isinstance(payload, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise OutcomeUnknown(NAME, "answer names no message id", status=200,
                             body=json.dumps(payload)[:500])
    return [Outcome(m.recipient.id, OutcomeKind.SENT, message_id=message_id, raw=payload)
            for m in messages]


def check_error(client: HttpClient, response: httpx.Response) -> None:
    """Refine a final non-200 answer."""
    if response.status_code in (404, 405):
        # "Domain not found" or a wrong URL: every request would fail alike.
        raise client.error(FatalTransportError, "domain or endpoint not found (check "
                           "mailgun_domain and provider_base_url)", response)
    raise_for_status(client, response)


def events_path(domain: str) -> str:
    return messages_path(domain).removesuffix("/messages") + "/events"


def events_params(batch: UnknownBatch, now: datetime, recipient: str | None = None, *,
                  limit: int = EVENTS_LIMIT) -> dict[str, str]:
    """The query of the first page of ``batch``'s accepted events: its time window in epoch
    seconds, oldest first, for one ``recipient`` (the address as it was sent to) or all."""
    begin = batch.sent_at - WINDOW_BEFORE
    end = max(min(now, batch.sent_at + WINDOW_AFTER), begin)
    params = {
        "event": "accepted",
        "begin": str(math.floor(begin.timestamp())),
        "end": str(math.ceil(end.timestamp())),
        "ascending": "yes",
        "limit": str(limit),
    }
    if recipient is not None:
        params["recipient"] = recipient
    return params


def parse_events(payload: Any, batch: UnknownBatch) -> tuple[Found, str | None]:
    """Subscriber id -> (message id, event) for each accepted event of one page that carries
    ``batch``'s edition and one of its subscriber ids, and the next page's URL (None once a
    page is empty). A page we cannot read is ``LookupFailed``: nothing is concluded from it."""
    items = payload.get("items") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise LookupFailed(NAME, "events answer holds no list of items", status=200,
                           body=json.dumps(payload)[:500])
    if not items:
        # Mailgun always gives a next URL; the page after the last one is empty.
        return {}, None
    ids = {row.subscriber_id for row in batch.rows}
    found: Found = {}
    for item in items:
        subscriber = _our_subscriber(item, batch.edition_key, ids)
        if subscriber is not None:
            keep(found, subscriber, (_message_id(item), item), batch.key)
    paging = payload.get("paging")
    next_url = paging.get("next") if isinstance(paging, dict) else None
    if not isinstance(next_url, str) or not next_url:
        # More events may follow; reading "not found" into the rest would be a guess.
        raise LookupFailed(NAME, "a page of events without paging.next", status=200,
                           body=json.dumps(payload)[:500])
    return found, next_url


def keep(found: Found, subscriber: int, hit: tuple[str, Any], batch_key: str) -> None:
    """Record ``hit`` for ``subscriber``: the first one seen, unless a later one is of our very
    batch. An accepted event of the same edition from another batch (an earlier attempt that
    was indexed late) still means the subscriber has the edition."""
    if subscriber not in found or (_batch_of(hit[1]) == batch_key
                                   and _batch_of(found[subscriber][1]) != batch_key):
        found[subscriber] = hit


def complete(found: Found, wanted: set[int], batch_key: str) -> bool:
    """Whether each of ``wanted`` was found in an event of our very batch, which ``keep``
    never replaces (one found only in another batch's event may still be)."""
    return all(s in found and _batch_of(found[s][1]) == batch_key for s in wanted)


def _user_variables(item: Any) -> dict[str, Any]:
    variables = item.get("user-variables") if isinstance(item, dict) else None
    return variables if isinstance(variables, dict) else {}


def _batch_of(item: Any) -> Any:
    return _user_variables(item).get("batch")


def _our_subscriber(item: Any, edition_key: str, ids: set[int]) -> int | None:
    """The subscriber id an accepted event of our edition names, when it is one of ``ids``."""
    if not isinstance(item, dict) or item.get("event") != "accepted":
        return None
    variables = _user_variables(item)
    if variables.get("edition") != edition_key:
        return None
    value = variables.get("subscriber_id")
    # Mailgun gives variables back as sent (text), or as a number when the text was one.
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value)
    if not text.isdigit() or int(text) not in ids:
        return None
    return int(text)


def _message_id(item: dict[str, Any]) -> str:
    """The event's ``message.headers.message-id`` in the form the messages API answered it
    (``<id>``), which is what ``send_batch`` recorded; "" when the event lacks it: accepted
    all the same."""
    message = item.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    value = headers.get("message-id") if isinstance(headers, dict) else None
    if not isinstance(value, str) or not value.strip("<>"):
        return ""
    return f"<{value.strip('<>')}>"


def sample(addresses: list[str]) -> list[str]:
    """The first, middle and last of a batch's addresses: enough to learn whether Mailgun
    took the request, which it takes or refuses whole."""
    return list(dict.fromkeys(addresses[i] for i in (0, len(addresses) // 2, -1)))


def same_origin(url: str, base: str) -> bool:
    """Whether ``url`` is on the scheme, host and port of ``base``: the only place a next page
    is fetched from, since the request carries the API key."""
    try:
        there, here = httpx.URL(url), httpx.URL(base)
    except httpx.InvalidURL:
        return False
    return (there.scheme, there.host, there.port) == (here.scheme, here.host, here.port)


def recipient_address(email: str) -> str | None:
    """A row's address as the message was sent to it (the domain in IDNA form), or None when
    it cannot be asked by address (erased, or not an address a message could carry)."""
    if not email:
        return None
    try:
        return envelope_address(email)
    except HeaderError:
        return None


class MailgunTransport:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = False
    settle: timedelta

    def __init__(self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None,
                 page_limit: int = EVENTS_LIMIT, **client_options: Any):
        config.require("provider_api_key", "mailgun_domain")
        if not 1 <= page_limit <= EVENTS_LIMIT:
            raise ValueError(f"page_limit must be 1 to {EVENTS_LIMIT}")
        self.path = messages_path(config.mailgun_domain)
        self.events_path = events_path(config.mailgun_domain)
        self.base_url = base_url(config.provider_base_url)
        self.page_limit = page_limit  # smaller only in tests, to page through few events
        self.settle = (timedelta(seconds=config.reconcile_settle)
                       if config.reconcile_settle > 0 else DEFAULT_SETTLE)
        self.client = HttpClient(
            NAME,
            self.base_url,
            headers={"Accept": "application/json"},
            auth=("api", config.provider_api_key),
            transport=transport,
            secrets=[config.provider_api_key],
            **client_options,
        )

    async def send_batch(self, outgoing: Outgoing, messages: Sequence[Personalized], *,
                         batch_key: str) -> list[Outcome]:
        check_batch(self, messages)
        form = build_form(outgoing, messages, batch_key=batch_key)
        response = await self.client.request("POST", self.path, files=multipart(form))
        if response.status_code != 200:
            check_error(self.client, response)
            raise self.client.error(FatalTransportError, "unexpected answer", response)
        try:
            payload = response.json()
        except ValueError:
            # Mailgun answers a wrong URL with a 200 page ("Mailgun Magnificent API").
            if "Magnificent" in response.text:
                raise self.client.error(FatalTransportError, "not the messages endpoint "
                                        "(check provider_base_url)", response) from None
            raise self.client.error(OutcomeUnknown, "answer is not JSON", response) from None
        return parse_queued(messages, payload)

    async def reconcile(self, batch: UnknownBatch, *, now: datetime) -> list[Finding]:
        """What Mailgun's accepted events say of each row of ``batch``."""
        if not batch.rows:
            return []
        age = now - batch.sent_at
        if age > RETENTION:
            return undecided(batch, f"sent {age.days} days ago: Mailgun keeps events "
                             f"{RETENTION.days} days on some plans, so not finding them "
                             "proves nothing")
        addresses = [recipient_address(row.email) for row in batch.rows]
        found: Found = {}
        if all(addresses):
            asked = [a for a in dict.fromkeys(addresses) if a is not None]
            if len(asked) > PER_ROW_MAX:
                asked = sample(asked)
            for address in asked:
                wanted = {row.subscriber_id for row, a in zip(batch.rows, addresses, strict=True)
                          if a == address}
                await self._scan(events_params(batch, now, address, limit=self.page_limit),
                                 batch, found, wanted)
            hit = next((h for h in found.values() if _batch_of(h[1]) == batch.key), None)
            if hit is not None and len(asked) < len(addresses):
                # Mailgun takes a request whole (one id for all its messages): one of its
                # messages accepted, every one of them was.
                return [Finding(row.subscriber_id, Verdict.ACCEPTED, hit[0],
                                "found in Mailgun's accepted events of the batch", hit[1])
                        for row in batch.rows]
            where = "Mailgun's accepted events of each recipient"
            if len(asked) < len(addresses):
                where = "Mailgun's accepted events of the batch's recipients asked"
        else:
            # Many rows, or one that cannot be asked by address: every event of the window.
            await self._scan(events_params(batch, now, limit=self.page_limit), batch, found,
                             {row.subscriber_id for row in batch.rows})
            where = "Mailgun's accepted events"
        return judge(batch, found, settle=self.settle, now=now, where=where)

    async def _scan(self, params: dict[str, str], batch: UnknownBatch, found: Found,
                    wanted: set[int]) -> None:
        """The pages of one query into ``found``, following ``paging.next`` (on our API's host
        only) until a page comes back empty, or until every ``wanted`` row has been found in
        its own batch's event: no later page could change what is kept of them."""
        url: str = self.events_path
        query: dict[str, str] | None = params
        for _ in range(MAX_PAGES):
            page, next_url = parse_events(await self._get(url, query), batch)
            for subscriber, hit in page.items():
                keep(found, subscriber, hit, batch.key)
            if next_url is None or complete(found, wanted, batch.key):
                return
            if not same_origin(next_url, self.base_url):
                raise LookupFailed(NAME, f"events answer points its next page elsewhere "
                                   f"({next_url[:100]}); not followed with our key",
                                   secrets=self.client.secrets)
            url, query = next_url, None
        raise LookupFailed(NAME, f"events search gave more than {MAX_PAGES} pages")

    async def _get(self, url: str, params: dict[str, str] | None) -> Any:
        return await self.client.lookup(url, params, what="events search")

    async def aclose(self) -> None:
        await self.client.aclose()


INFO = ProviderInfo(
    name=NAME, transport=MailgunTransport,
    settings=("provider_api_key", "provider_base_url", "mailgun_domain"),
    default_endpoint=DEFAULT_BASE_URL, webhook="mailgun", reconciles="api")
