"""Postmark: ``POST /email/batch``, at most 500 messages per request.

Each message carries its own filled-in HTML and text, the list headers, the message stream
(newsletters belong on a broadcast stream) and metadata naming the edition and subscriber.
The answer holds one result per message, in order: ErrorCode 0 is sent; 406 (inactive
recipient) and 300 (invalid request for that message) fail that recipient only; the account
and sender errors below stop the whole send.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from ..config import Config
from ..message.model import Outgoing, Personalized
from ._http import HttpClient, api_client, raise_for_status
from ._json_body import filled_parts, plain
from .base import (
    BatchRejected,
    FatalTransportError,
    Outcome,
    OutcomeKind,
    OutcomeUnknown,
    check_batch,
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


def build_batch(outgoing: Outgoing, messages: Sequence[Personalized],
                stream: str) -> list[dict[str, Any]]:
    """The batch's messages as the request body's array holds them."""
    return [plain(m) for m in iter_batch(outgoing, messages, stream)]


def iter_batch(outgoing: Outgoing, messages: Sequence[Personalized],
               stream: str) -> Iterator[dict[str, Any]]:
    """The batch's messages, one at a time, their parts kept as ``Filled``."""
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
                         "subscriber_id": str(person.recipient.id)},
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


class PostmarkTransport:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = False

    def __init__(self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None,
                 **client_options: Any):
        self.stream = config.provider_stream or DEFAULT_STREAM
        self.client = api_client(
            NAME, config, DEFAULT_BASE_URL, transport=transport,
            headers={"X-Postmark-Server-Token": config.provider_api_key}, **client_options)

    async def send_batch(self, outgoing: Outgoing, messages: Sequence[Personalized], *,
                         batch_key: str) -> list[Outcome]:
        check_batch(self, messages)
        items = iter_batch(outgoing, messages, self.stream)
        response = await self.client.request("POST", "/email/batch", json_items=items)
        if response.status_code != 200:
            check_error(self.client, response)
        try:
            payload = response.json()
        except ValueError:
            raise self.client.error(OutcomeUnknown, "answer is not JSON", response) from None
        return parse_batch(messages, payload)

    async def aclose(self) -> None:
        await self.client.aclose()


INFO = ProviderInfo(
    name=NAME, transport=PostmarkTransport,
    settings=("provider_api_key", "provider_base_url", "provider_stream"),
    default_endpoint=DEFAULT_BASE_URL, webhook="postmark")
