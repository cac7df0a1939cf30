"""The HTTP retry rules as every HTTP provider applies them (``transports/_http.py``).

Each provider's own answers (success shapes, partial failures, its error codes) are tested in
its own file; these are the rules they share, run against each of them: a 5xx is retried and
then means "retry later", a connection that never reached the provider is retried, and a
timeout after the request was sent is "unknown" and never resent without an idempotency key.
"""

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from newsletter.providers.base import BatchRetryable, OutcomeKind, OutcomeUnknown
from newsletter.providers.mailgun import MailgunTransport
from newsletter.providers.postmark import PostmarkTransport
from newsletter.providers.resend import ResendTransport
from newsletter.providers.sendgrid import SendGridTransport
from tests.transport_fixtures import make_config, make_outgoing, send_with


@dataclass(frozen=True)
class Provider:
    name: str
    cls: Any
    success: Any  # request -> the provider's answer accepting 3 messages
    config: dict


PROVIDERS = [
    Provider("postmark", PostmarkTransport, lambda r: httpx.Response(200, json=[
        {"ErrorCode": 0, "Message": "OK", "MessageID": f"id-{i}"} for i in range(3)]), {}),
    Provider("sendgrid", SendGridTransport,
             lambda r: httpx.Response(202, headers={"X-Message-Id": "sg-1"}), {}),
    Provider("mailgun", MailgunTransport, lambda r: httpx.Response(
        200, json={"id": "<1@mg.example.com>", "message": "Queued. Thank you."}),
        {"mailgun_domain": "mg.example.com"}),
    Provider("resend", ResendTransport, lambda r: httpx.Response(
        200, json={"data": [{"id": f"re-{i}"} for i in range(3)]}), {}),
]
NOT_IDEMPOTENT = [p for p in PROVIDERS if not p.cls.idempotent]


async def send(project, provider: Provider, handler):
    config = make_config(project, provider=provider.name, **provider.config)
    return await send_with(provider.cls, config, make_outgoing(config), handler)


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
async def test_a_5xx_is_retried_then_means_retry_later(project, provider):
    calls = []

    def handler(request):
        calls.append(request.headers.get("Idempotency-Key"))
        return httpx.Response(500, text="internal error")

    with pytest.raises(BatchRetryable) as err:
        await send(project, provider, handler)
    assert len(calls) == 3 and err.value.status == 500
    assert len(set(calls)) == 1, "a retried request is the same request"


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
async def test_a_connect_error_is_retried(project, provider):
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) < 3:
            raise httpx.ConnectError("refused", request=request)
        return provider.success(request)

    results = await send(project, provider, handler)
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
async def test_a_connect_error_every_time_means_retry_later(project, provider):
    def handler(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(BatchRetryable):
        await send(project, provider, handler)


@pytest.mark.parametrize("provider", NOT_IDEMPOTENT, ids=lambda p: p.name)
async def test_a_timeout_after_sending_is_unknown_and_not_resent(project, provider):
    calls = []

    def handler(request):
        calls.append(1)
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(OutcomeUnknown):
        await send(project, provider, handler)
    assert len(calls) == 1, "without an idempotency key the batch must not be sent twice"


# -- once an attempt may have been accepted, the request stays "unknown" ----------------------

IDEMPOTENT = [p for p in PROVIDERS if p.cls.idempotent]


@pytest.mark.parametrize("provider", IDEMPOTENT, ids=lambda p: p.name)
@pytest.mark.parametrize("later", [
    lambda r: httpx.Response(429, headers={"retry-after": "0"}, text="slow down"),
    lambda r: httpx.Response(503, text="unavailable"),
    lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)),
], ids=["429", "503", "connect-error"])
async def test_a_lost_answer_is_not_turned_into_retry_later_by_later_attempts(project, provider,
                                                                              later):
    calls = []

    def handler(request):
        calls.append(request.headers.get("Idempotency-Key"))
        if len(calls) == 1:
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return later(request)

    with pytest.raises(OutcomeUnknown) as err:
        await send(project, provider, handler)
    assert len(calls) == 3 and len(set(calls)) == 1
    assert "no answer after sending" in str(err.value), "the reason is the lost answer"


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
async def test_a_request_that_cannot_be_made_stops_the_send_without_showing_the_key(
        project, provider):
    from newsletter.providers.base import FatalTransportError

    calls = []

    def handler(request):
        calls.append(1)
        raise httpx.LocalProtocolError("Illegal header value b'Bearer secret-key-12345 '")

    import dataclasses

    from tests.transport_fixtures import make_outgoing as outgoing_of
    from tests.transport_fixtures import send_with

    # A key no header can carry (issue-free configs refuse it; a config built in code may not).
    config = dataclasses.replace(make_config(project, provider=provider.name, **provider.config),
                                 provider_api_key="secret-key-12345 ")

    with pytest.raises(FatalTransportError) as err:
        await send_with(provider.cls, config, outgoing_of(config), handler)
    assert len(calls) == 1, "the same request would fail the same way: not retried"
    assert "secret-key-12345" not in str(err.value)
