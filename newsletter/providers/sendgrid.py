"""SendGrid: ``POST /v3/mail/send``, at most 1000 personalizations per request.

The edition's HTML and text go into the request once. Each recipient field in them is
replaced by a substitution tag, and each personalization carries that recipient's values for
the tags (legacy ``substitutions``, which the spec allows with plain ``content``), plus the
recipient's list headers and ``custom_args`` naming the edition and subscriber.

Tags look like ``-<nonce>h0-`` (HTML-escaped value of field 0) and ``-<nonce>t0-`` (raw
value, for the text part). The nonce is 8 hex digits derived from the edition's content
hash and chosen so that it occurs in no literal part of the content, the subject, or any
value in the batch: every occurrence of a tag in the request is then one we placed, and
SendGrid's substitution reproduces each recipient's filled-in parts exactly.

SendGrid answers 202 with one ``X-Message-Id`` for the whole request. A 400 names the fields
at fault; when those are specific personalizations, only those recipients fail and the
others were not sent (``retry``); when they are the shared sender or content, the send stops.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ..config import Config
from ..edition.placeholders import FieldTemplate
from ..message.model import Outgoing, Personalized
from ._http import HttpClient, api_client, raise_for_status
from .base import (
    BatchRejected,
    FatalTransportError,
    Outcome,
    OutcomeKind,
    check_batch,
    pick_nonce,
)
from .info import ProviderInfo

NAME = "sendgrid"
DEFAULT_BASE_URL = "https://api.sendgrid.com"
PATH = "/v3/mail/send"
MAX_BATCH = 1000
# Error fields that belong to what every batch shares: such an error fails every batch alike.
SHARED_FIELDS = ("from", "reply_to", "subject", "content", "tracking_settings", "headers")
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)(?:\.|$)")
# RFC 5322 specials: SendGrid misparses a recipient name holding one of them unless the name
# is a quoted string (sendgrid/sendgrid-ruby#394, sendgrid/sendgrid-nodejs#522).
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


def display_name(name: str) -> str:
    name = name.strip()
    if _SPECIALS.search(name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


@dataclass(frozen=True, slots=True)
class TaggedContent:
    """The edition's content once, with substitution tags where recipient fields go."""

    html: str
    text: str
    html_tags: dict[str, str]   # field -> tag standing for its HTML-escaped value
    text_tags: dict[str, str]   # field -> tag standing for its raw value


def tag_content(html: FieldTemplate, text: FieldTemplate, nonce: str) -> TaggedContent:
    html_tags = {f: f"-{nonce}h{i}-" for i, f in enumerate(sorted(set(html.fields)))}
    text_tags = {f: f"-{nonce}t{i}-" for i, f in enumerate(sorted(set(text.fields)))}
    return TaggedContent(html.fill(html_tags), text.fill(text_tags), html_tags, text_tags)


def build_mail(outgoing: Outgoing, batch: Sequence[Personalized]) -> dict[str, Any]:
    """The request body: shared content once, one personalization per recipient. SendGrid
    refuses a whole request that names an address twice; the sender refuses the second
    before the batch gets here."""
    texts = [*outgoing.html.literals, *outgoing.text.literals, outgoing.subject]
    for person in batch:
        texts += person.values.values()
        texts += person.html_values.values()
    content = tag_content(outgoing.html, outgoing.text, pick_nonce(outgoing.content_hash, texts))

    personalizations = []
    for person in batch:
        recipient = person.recipient
        to: dict[str, str] = {"email": person.email}
        if recipient.name.strip():
            to["name"] = display_name(recipient.name)
        substitutions = {tag: person.html_values[f] for f, tag in content.html_tags.items()}
        substitutions.update({tag: person.values[f] for f, tag in content.text_tags.items()})
        personalizations.append({
            "to": [to],
            "substitutions": substitutions,
            "headers": dict(person.headers),
            "custom_args": {"edition": outgoing.edition_key, "subscriber_id": str(recipient.id)},
        })

    sender: dict[str, str] = {"email": outgoing.sender.address}
    if outgoing.sender.name:
        sender["name"] = outgoing.sender.name
    body: dict[str, Any] = {
        "personalizations": personalizations,
        "from": sender,
        "subject": outgoing.subject,
        # text/plain must come before text/html.
        "content": [
            {"type": "text/plain", "value": content.text},
            {"type": "text/html", "value": content.html},
        ],
        # Our own List-Unsubscribe headers and footer link handle unsubscribes; SendGrid's
        # subscription tracking would add a second link and header.
        "tracking_settings": {"subscription_tracking": {"enable": False}},
    }
    if outgoing.sender.reply_to:
        body["reply_to"] = {"email": outgoing.sender.reply_to}
    return body


def parse_accepted(messages: Sequence[Personalized],
                   response: httpx.Response) -> list[Outcome]:
    """A 2xx answer: every recipient was accepted under the request's X-Message-Id."""
    message_id = response.headers.get("x-message-id", "")
    return [Outcome(m.recipient.id, OutcomeKind.SENT, message_id=message_id) for m in messages]


def error_fields(payload: Any) -> list[tuple[str, str]]:
    """(field, message) pairs of a SendGrid error body; unknown shapes give none."""
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(errors, list):
        return []
    out = []
    for item in errors:
        if isinstance(item, dict):
            field = item.get("field")
            out.append(("" if field in (None, "null") else str(field),
                        str(item.get("message", ""))))
    return out


def parse_rejected(messages: Sequence[Personalized], payload: Any) -> list[Outcome] | None:
    """Per-recipient results for a 400 that names only personalizations, else None.

    SendGrid validates the whole request before sending any of it, so the recipients it
    does not name were not sent and may be sent again.
    """
    bad: dict[int, list[tuple[str, str]]] = {}
    for field, message in error_fields(payload):
        match = _PERSONALIZATION_FIELD.match(field)
        if not match or int(match.group(1)) >= len(messages):
            return None
        bad.setdefault(int(match.group(1)), []).append((field, message))
    if not bad:
        return None
    results = []
    for index, person in enumerate(messages):
        recipient = person.recipient
        if index in bad:
            errors = bad[index]
            results.append(Outcome(
                recipient.id, OutcomeKind.FAILED, code="400",
                reason="; ".join(f"{field}: {message}" for field, message in errors),
                bad_address=any(field.endswith(".email") for field, _ in errors),
                raw=errors,
            ))
        else:
            results.append(Outcome(recipient.id, OutcomeKind.RETRY, code="400",
                                   reason="not sent: SendGrid refused another recipient "
                                   "of the same request"))
    return results


def check_error(client: HttpClient, response: httpx.Response) -> None:
    """Refine a final non-2xx answer; SendGrid's 400 names the fields at fault."""
    status = response.status_code
    if status in (404, 405):
        raise client.error(FatalTransportError, "no mail send endpoint here (check "
                           "provider_base_url)", response)
    if status == 400:
        try:
            fields = [f for f, _ in error_fields(response.json())]
        except ValueError:
            fields = []
        if any(f.split(".")[0] in SHARED_FIELDS for f in fields):
            raise client.error(FatalTransportError, "the sender or content was refused",
                               response)
    if status == 413:
        raise client.error(BatchRejected, "request too large", response)
    raise_for_status(client, response)


class SendGridTransport:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = False

    def __init__(self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None,
                 **client_options: Any):
        self.client = api_client(NAME, config, DEFAULT_BASE_URL, bearer=True,
                                 transport=transport, **client_options)

    async def send_batch(self, outgoing: Outgoing, messages: Sequence[Personalized], *,
                         batch_key: str) -> list[Outcome]:
        check_batch(self, messages)
        body = build_mail(outgoing, messages)
        response = await self.client.request("POST", PATH, json=body)
        if 200 <= response.status_code < 300:
            return parse_accepted(messages, response)
        if response.status_code == 400:
            try:
                results = parse_rejected(messages, response.json())
            except ValueError:
                results = None
            if results is not None:
                return results
        check_error(self.client, response)
        raise self.client.error(FatalTransportError, "unexpected answer", response)

    async def aclose(self) -> None:
        await self.client.aclose()


INFO = ProviderInfo(
    name=NAME, transport=SendGridTransport, settings=("provider_api_key", "provider_base_url"),
    default_endpoint=DEFAULT_BASE_URL, webhook="sendgrid", reconciles="events")
