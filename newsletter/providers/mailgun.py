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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from ..config import Config
from ..errors import ConfigError
from ..message.model import Outgoing, Personalized
from ._http import HttpClient, raise_for_status
from .base import (
    FatalTransportError,
    Outcome,
    OutcomeKind,
    OutcomeUnknown,
    check_batch,
    pick_nonce,
)
from .info import ProviderInfo

NAME = "mailgun"
DEFAULT_BASE_URL = "https://api.mailgun.net"   # EU: https://api.eu.mailgun.net
MAX_BATCH = 1000
Form = list[tuple[str, str]]


def messages_path(domain: str) -> str:
    if not domain or "/" in domain or "%2f" in domain.lower():
        raise ConfigError(f"config key 'mailgun_domain' is not a domain name: {domain!r}")
    return f"/v3/{quote(domain, safe='')}/messages"


def base_url(configured: str) -> str:
    """The API root; a configured URL ending in ``/v3`` (as Mailgun's docs show it) is fine."""
    url = (configured or DEFAULT_BASE_URL).rstrip("/")
    return url[: -len("/v3")] if url.endswith("/v3") else url


def build_form(outgoing: Outgoing, batch: Sequence[Personalized]) -> Form:
    """The form fields, in order; ``to`` repeats, every other name occurs once. Recipient
    variables are keyed by address, so the batch holds no address twice (the sender refuses
    the second before the batch gets here)."""
    sender = outgoing.sender.header

    texts = [*outgoing.html.literals, *outgoing.text.literals, outgoing.subject, sender]
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
    form += [("v:edition", outgoing.edition_key), ("v:subscriber_id", f"%recipient.{id_key}%")]
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


class MailgunTransport:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = False

    def __init__(self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None,
                 **client_options: Any):
        config.require("provider_api_key", "mailgun_domain")
        self.path = messages_path(config.mailgun_domain)
        self.client = HttpClient(
            NAME,
            base_url(config.provider_base_url),
            headers={"Accept": "application/json"},
            auth=("api", config.provider_api_key),
            transport=transport,
            secrets=[config.provider_api_key],
            **client_options,
        )

    async def send_batch(self, outgoing: Outgoing, messages: Sequence[Personalized], *,
                         batch_key: str) -> list[Outcome]:
        check_batch(self, messages)
        form = build_form(outgoing, messages)
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

    async def aclose(self) -> None:
        await self.client.aclose()


INFO = ProviderInfo(
    name=NAME, transport=MailgunTransport,
    settings=("provider_api_key", "provider_base_url", "mailgun_domain"),
    default_endpoint=DEFAULT_BASE_URL, webhook="mailgun")
