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
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from datetime import timedelta
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


class ResendTransport:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = True
    # Resend remembers an idempotency key for 24 hours: a batch first sent longer ago than
    # that is repeated only on request, as a plain unknown.
    idempotency_window = timedelta(hours=24)

    def __init__(self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None,
                 **client_options: Any):
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

    async def aclose(self) -> None:
        await self.client.aclose()


INFO = ProviderInfo(
    name=NAME, transport=ResendTransport, settings=("provider_api_key", "provider_base_url"),
    default_endpoint=DEFAULT_BASE_URL, webhook="resend")
