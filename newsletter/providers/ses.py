"""Amazon SES (API v2): ``POST /v2/email/outbound-emails``, one raw message per request.

Each recipient's complete message (``Outgoing.message``: our headers, List-Unsubscribe,
Message-ID) goes as ``Content.Raw.Data``; the envelope is ``FromEmailAddress`` (the bare
``from_address``) and ``Destination.ToAddresses`` (the recipient, domain in IDNA form).
``EmailTags`` carry the edition key and the subscriber id so that
SES event notifications can be matched back; tag names and values may only hold
``[A-Za-z0-9_-]`` (at most 256 characters), so anything else becomes ``_``: the edition key
``2026-W47.0123abcd`` is tagged ``2026-W47_0123abcd``.

``ConfigurationSetName`` is sent only when ``provider_stream`` names a configuration set. A
configuration set that does not exist makes SES answer NotFoundException for every message,
so that stops the send.

Requests are signed with AWS Signature Version 4 (service ``ses``) by botocore, an optional
dependency (``pip install 'newsletter[ses]'``). The signing happens in an ``httpx.Auth``, so
each retry of the HTTP client is signed afresh. The endpoint is
``https://email.{aws_region}.amazonaws.com`` unless ``provider_base_url`` says otherwise.

SES takes one raw message per request, so a batch (at most 50) is sent as concurrent requests,
at most ``max_in_flight`` (10) at a time for the whole transport, and every message has its own
outcome:

    200 {"MessageId"}                                   sent, with SES's message id
    MessageRejected                                     failed for that recipient (bad_address
        when the address is on the suppression list or is invalid); but when the text names
        our own from_address (sender not verified) the send stops
    BadRequestException / other 4xx                     failed for that recipient
    TooManyRequestsException (429), LimitExceeded-      retry, after the HTTP client's own
        Exception, Throttling (400), 5xx                retries for 429/5xx
    504, timeout or broken connection after sending     unknown for that recipient only
    AccountSuspendedException, SendingPausedException,  the send stops: FatalTransportError,
    MailFromDomainNotVerifiedException,                 or, if other messages of the batch
    NotFoundException, 401/403 (InvalidSignature-       were already decided, that message's
    Exception, UnrecognizedClientException,             outcome has ``fatal=True`` (kind
    AccessDenied(Exception), SignatureDoesNotMatch)     untried) and the batch is returned

After the first fatal answer no further message of the batch is started; after a message ends
as retry (throttled, or SES unreachable once the HTTP client's retries are spent) or unknown
(a timeout) neither, as the rest would only hammer a provider that asked us to wait or is not
answering, and turn more recipients unknown: those not started are ``untried`` (messages
already in flight keep their own outcome).
Only when nothing in the batch was decided does a fatal error raise. SES has no idempotency
key, so nothing is resent when its outcome is unknown.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Generator, Sequence
from typing import Any

import httpx

from ..config import Config
from ..errors import ConfigError, NewsletterError
from ..message.model import Outgoing, Personalized
from ._http import HttpClient, raise_for_status
from .base import (
    BatchError,
    BatchRetryable,
    FatalTransportError,
    Outcome,
    OutcomeKind,
    OutcomeUnknown,
    TransportError,
    check_batch,
    not_sent,
    redact,
    results_for,
)
from .info import ProviderInfo

NAME = "ses"
SEND_PATH = "/v2/email/outbound-emails"
MAX_BATCH = 50
MAX_IN_FLIGHT = 10
INSTALL_HINT = "pip install 'newsletter[ses]'"

FATAL_TYPES = frozenset({
    "AccountSuspendedException",
    "SendingPausedException",
    "MailFromDomainNotVerifiedException",
    "NotFoundException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "MissingAuthenticationToken",
    "ExpiredTokenException",
    "AccessDenied",
    "AccessDeniedException",
})
THROTTLE_TYPES = frozenset({
    "TooManyRequestsException",
    "LimitExceededException",
    "ThrottlingException",
    "Throttling",
})
BAD_ADDRESS_HINTS = ("suppression list", "suppressed", "illegal address", "invalid address",
                     "address is invalid", "missing final '@domain'")
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_REGION = re.compile(r"^[a-z0-9-]+$")


def tag_value(value: str) -> str:
    """A value SES accepts as a tag name or value: ``[A-Za-z0-9_-]``, 1 to 256 characters."""
    return _TAG_UNSAFE.sub("_", value)[:256] or "_"


def configuration_set(config: Config) -> str:
    return config.provider_stream.strip()


def build_request(outgoing: Outgoing, person: Personalized, *,
                  configuration_set: str = "") -> dict[str, Any]:
    """The SendEmail body for one recipient's raw message."""
    message = outgoing.message(person)
    tags = {"edition": outgoing.edition_key, "subscriber_id": str(person.recipient.id)}
    body: dict[str, Any] = {
        "FromEmailAddress": outgoing.sender.envelope,
        "Destination": {"ToAddresses": [person.email]},
        "Content": {"Raw": {"Data": base64.b64encode(message).decode("ascii")}},
        "EmailTags": [{"Name": tag_value(k), "Value": tag_value(v)} for k, v in tags.items()],
    }
    if configuration_set:
        body["ConfigurationSetName"] = configuration_set
    return body


def error_type(response: httpx.Response) -> tuple[str, str]:
    """SES's error type and message, from the header, a JSON body, or an XML body."""
    kind = response.headers.get("x-amzn-errortype", "").split(":", 1)[0].strip()
    message = ""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        if not kind:
            raw = str(payload.get("__type") or payload.get("code") or payload.get("Code") or "")
            kind = raw.rsplit("#", 1)[-1].split(":", 1)[0]
        message = str(payload.get("message") or payload.get("Message") or "")
    else:
        text = response.text
        found = re.search(r"<Code>([^<]*)</Code>", text)
        if found and not kind:
            kind = found.group(1).strip()
        found = re.search(r"<Message>([^<]*)</Message>", text)
        if found:
            message = found.group(1).strip()
    return kind, message


def parse_send(client: HttpClient, person: Personalized, response: httpx.Response, *,
               from_address: str) -> Outcome:
    """One answer to SendEmail: a result for its recipient, or the error for the request.

    Raises FatalTransportError (stop the send), BatchRetryable or OutcomeUnknown; returns a
    ``sent`` or ``failed`` result.
    """
    recipient = person.recipient
    if response.status_code == 200:
        try:
            message_id = str(response.json()["MessageId"])
        except (ValueError, KeyError, TypeError):
            raise client.error(OutcomeUnknown, "answer has no MessageId", response) from None
        return Outcome(recipient.id, OutcomeKind.SENT, message_id=message_id)
    kind, text = error_type(response)
    label = kind or "error"
    lowered = text.lower()
    if kind in FATAL_TYPES:
        raise client.error(FatalTransportError, label, response)
    if kind in THROTTLE_TYPES:
        raise client.error(BatchRetryable, label, response)
    if kind == "MessageRejected" and from_address and from_address.lower() in lowered:
        raise client.error(FatalTransportError, f"{label}: sender not allowed", response)
    if kind in ("MessageRejected", "BadRequestException") or (
        400 <= response.status_code < 500 and response.status_code not in (401, 403)
    ):
        return Outcome(
            recipient.id, OutcomeKind.FAILED, code=label,
            reason=redact(text or response.text or label, client.secrets),
            bad_address=any(hint in lowered for hint in BAD_ADDRESS_HINTS),
            raw={"status": response.status_code, "type": kind,
                 "message": redact(text, client.secrets)},
        )
    raise_for_status(client, response)
    raise client.error(OutcomeUnknown, f"unexpected answer {label}", response)


def _load_botocore() -> tuple[Any, Any, Any]:
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError:
        raise NewsletterError(
            f"provider 'ses' needs botocore to sign requests: {INSTALL_HINT}"
        ) from None
    return SigV4Auth, AWSRequest, Credentials


class SigV4(httpx.Auth):
    """Signs each request (each retry too) with AWS Signature Version 4."""

    requires_request_body = True

    def __init__(self, access_key: str, secret_key: str, region: str, service: str = NAME,
                 session_token: str | None = None):
        sigv4, self._aws_request, credentials = _load_botocore()
        self._signer = sigv4(credentials(access_key, secret_key, session_token), service, region)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        headers = {"Host": request.headers["host"]}
        if "content-type" in request.headers:
            headers["Content-Type"] = request.headers["content-type"]
        aws = self._aws_request(method=request.method, url=str(request.url),
                                data=request.content, headers=headers)
        self._signer.add_auth(aws)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws.headers:
                request.headers[name] = aws.headers[name]
        yield request


class SesTransport:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = False

    def __init__(self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None,
                 max_in_flight: int = MAX_IN_FLIGHT, **client_options: Any):
        config.require("aws_region", "aws_access_key_id", "aws_secret_access_key")
        region = config.aws_region.strip()
        if not _REGION.match(region):
            raise ConfigError(f"config key 'aws_region' is not an AWS region: {region!r}")
        auth = SigV4(config.aws_access_key_id, config.aws_secret_access_key, region)
        self.from_address = config.from_address
        self.configuration_set = configuration_set(config)
        self._limit = asyncio.Semaphore(max_in_flight)
        self.client = HttpClient(
            NAME,
            config.provider_base_url or f"https://email.{region}.amazonaws.com",
            headers={"Accept": "application/json"},
            auth=auth,
            transport=transport,
            secrets=[config.aws_secret_access_key],
            **client_options,
        )

    async def send_one(self, outgoing: Outgoing, person: Personalized) -> Outcome:
        """Send one recipient's message; raises as ``parse_send`` does."""
        body = build_request(outgoing, person, configuration_set=self.configuration_set)
        response = await self.client.request("POST", SEND_PATH, json=body)
        return parse_send(self.client, person, response, from_address=self.from_address)

    async def send_batch(self, outgoing: Outgoing, messages: Sequence[Personalized], *,
                         batch_key: str) -> list[Outcome]:
        check_batch(self, messages)
        results: list[Outcome | None] = [None] * len(messages)
        fatal: list[FatalTransportError] = []
        halt: list[BatchError] = []

        async def one(index: int, person: Personalized) -> None:
            async with self._limit:
                if fatal or halt:
                    return
                try:
                    results[index] = await self.send_one(outgoing, person)
                except FatalTransportError as exc:
                    fatal.append(exc)
                    results[index] = Outcome(
                        person.recipient.id, OutcomeKind.UNTRIED, code=str(exc.status or ""),
                        reason=str(exc), fatal=True)
                except BatchError as exc:
                    results[index] = results_for([person], exc)[0]
                    if isinstance(exc, BatchRetryable | OutcomeUnknown):
                        halt.append(exc)

        async with asyncio.TaskGroup() as group:
            for index, person in enumerate(messages):
                group.create_task(one(index, person))

        if fatal and all(r is None or r.fatal for r in results):
            raise fatal[0]
        stopped_by: TransportError | None = fatal[0] if fatal else (halt[0] if halt else None)
        out = []
        for person, result in zip(messages, results, strict=True):
            if result is None:
                assert stopped_by is not None
                result = not_sent([person], stopped_by)[0]
            out.append(result)
        return out

    async def aclose(self) -> None:
        await self.client.aclose()


INFO = ProviderInfo(
    name=NAME, transport=SesTransport,
    settings=("aws_region", "aws_access_key_id", "aws_secret_access_key", "provider_base_url",
              "provider_stream"),
    default_endpoint=lambda config: f"https://email.{config.aws_region}.amazonaws.com",
    webhook="ses", reconciles="events")
