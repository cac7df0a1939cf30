"""Resend: the batch body against Resend's spec, the idempotency key that makes a resend safe,
and every answer shape.

Not used: the npm ``resend-local`` emulator (0.0.7). It validates bodies against the same
OpenAPI spec as ``validate_request`` below and checks only that the key starts with ``re_``;
it ignores Idempotency-Key (a repeated key sends again with new ids) and
``x-batch-validation``, accepts tag values Resend refuses, never answers 409/422/429, names
errors ``type`` where Resend says ``name``, and needs a ~400 MB Next.js install.
"""

import json
import re

import httpx
import pytest

from newsletter.audience.recipient import Recipient
from newsletter.errors import ConfigError
from newsletter.providers.base import (
    BatchRejected,
    FatalTransportError,
    OutcomeKind,
    OutcomeUnknown,
)
from newsletter.providers.resend import (
    ResendTransport,
    build_batch,
    idempotency_key,
    parse_batch,
    tag_value,
)
from tests.provider_specs import validate_request, validate_response
from tests.transport_fixtures import (
    API_KEY,
    make_config,
    make_outgoing,
    personal_parts,
    personalized,
    recipients,
    send_with,
)

BOB = Recipient(id=42, email="bob@exämple.com", name='<Bob> & "B"')
TAG_CHARSET = re.compile(r"[A-Za-z0-9_-]{1,256}")


@pytest.fixture
def config(project):
    return make_config(project, provider="resend")


@pytest.fixture
def outgoing(config):
    return make_outgoing(config)


def ok(n, start=1):
    return {"data": [{"id": f"re-{i}"} for i in range(start, start + n)]}


def error(status, name, message="nope"):
    return httpx.Response(status, json={"statusCode": status, "name": name,
                                        "message": message})


async def send(config, outgoing, handler, n=3, sleeps=None, batch_key="b1"):
    return await send_with(ResendTransport, config, outgoing, handler, n=n, sleeps=sleeps,
                           batch_key=batch_key)


# --- the request ---------------------------------------------------------------------------


def test_batch_body_matches_resends_spec(outgoing):
    body = build_batch(outgoing, personalized(outgoing, [*recipients(2), BOB]))
    validate_request("resend", "/emails/batch", "post", body)
    first = body[0]
    assert first["from"] == "Five Things <editors@fivethings.example.com>"
    assert first["to"] == ["Reader 1 <reader1@example.com>"]
    assert first["reply_to"] == "editors@fivethings.example.com"
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert body[2]["to"] == ['"<Bob> & \\"B\\"" <bob@xn--exmple-cua.com>']


def test_tags_name_the_edition_and_subscriber_in_resends_charset(outgoing):
    body = build_batch(outgoing, personalized(outgoing, recipients(2)))
    tags = {t["name"]: t["value"] for t in body[1]["tags"]}
    assert tags == {"edition": outgoing.edition_key.replace(".", "_"), "subscriber_id": "2"}
    for message in body:
        for tag in message["tags"]:
            assert TAG_CHARSET.fullmatch(tag["name"]) and TAG_CHARSET.fullmatch(tag["value"])
    assert tag_value("2026-W47.0a1b2c") == "2026-W47_0a1b2c"


def test_each_recipient_gets_their_own_filled_in_message(outgoing):
    batch = [*recipients(2), BOB]
    body = build_batch(outgoing, personalized(outgoing, batch))
    for message, recipient in zip(body, batch, strict=True):
        personal = personal_parts(outgoing, recipient)
        assert (message["html"], message["text"]) == (personal.html, personal.text)
        url = outgoing.personalize(recipient).values["unsubscribe_url"]
        assert f'href="{url}"' in message["html"] and f"Unsubscribe: {url}" in message["text"]
        assert message["headers"]["List-Unsubscribe"].startswith(f"<{url}>")
    assert "Hi &lt;Bob&gt;," in body[2]["html"] and "Hi <Bob>," in body[2]["text"]
    assert len({m["headers"]["List-Unsubscribe"] for m in body}) == 3


def test_the_idempotency_key_is_stable_per_batch_and_fits():
    assert idempotency_key("2026-W47.abc", "b1") == idempotency_key("2026-W47.abc", "b1")
    assert idempotency_key("2026-W47.abc", "b1") != idempotency_key("2026-W47.abc", "b2")
    assert idempotency_key("2026-W47.abc", "b1") != idempotency_key("2026-W48.abc", "b1")
    long = idempotency_key("2026-W47.abc", "x" * 300)
    assert 1 <= len(long) <= 256 and long == idempotency_key("2026-W47.abc", "x" * 300)


# --- the answers ---------------------------------------------------------------------------


def test_fake_answers_match_the_spec():
    validate_response("resend", "/emails/batch", "post", 200, ok(3))


async def test_success_records_ids_in_order(config, outgoing):
    seen = {}

    def handler(request):
        seen["headers"] = request.headers
        seen["url"] = str(request.url)
        seen["body"] = json.loads(request.content)
        return httpx.Response(200, json=ok(3))

    results = await send(config, outgoing, handler)
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3
    assert [r.message_id for r in results] == ["re-1", "re-2", "re-3"]
    assert seen["url"] == "https://api.resend.com/emails/batch"
    assert seen["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert seen["headers"]["Idempotency-Key"] == idempotency_key(outgoing.edition_key, "b1")
    assert seen["headers"]["x-batch-validation"] == "strict"
    validate_request("resend", "/emails/batch", "post", seen["body"])
    assert seen["body"] == build_batch(outgoing, personalized(outgoing, recipients(3)))


async def test_provider_base_url_overrides_the_endpoint(project, outgoing):
    config = make_config(project, provider="resend", provider_base_url="http://127.0.0.1:9/")
    urls = []

    def handler(request):
        urls.append(str(request.url))
        return httpx.Response(200, json=ok(1))

    await send(config, outgoing, handler, n=1)
    assert urls == ["http://127.0.0.1:9/emails/batch"]


def test_the_api_key_is_required(project):
    with pytest.raises(ConfigError, match="provider_api_key"):
        ResendTransport(make_config(project, provider="resend", provider_api_key=""))


@pytest.mark.parametrize("answer", [ok(2), {"data": []}, {}, [], {"data": [{}, {}, {}]},
                                    {"data": ok(3)["data"], "errors": [{"index": 1}]}])
def test_an_answer_that_does_not_map_onto_the_batch_is_unknown(outgoing, answer):
    with pytest.raises(OutcomeUnknown):
        parse_batch(personalized(outgoing, recipients(3)), answer)


async def test_a_mismatched_count_is_unknown(config, outgoing):
    with pytest.raises(OutcomeUnknown):
        await send(config, outgoing, lambda r: httpx.Response(200, json=ok(2)))


@pytest.mark.parametrize(("status", "name"), [(401, "missing_api_key"),
                                              (403, "invalid_api_key"),
                                              (403, "validation_error")])
async def test_refused_credentials_stop_the_send_and_never_show_the_key(config, outgoing,
                                                                         status, name):
    with pytest.raises(FatalTransportError) as err:
        await send(config, outgoing, lambda r: error(status, name, f"bad key {API_KEY}"))
    assert err.value.status == status
    assert API_KEY not in str(err.value) and API_KEY not in err.value.body
    assert "[redacted]" in str(err.value)


@pytest.mark.parametrize(("status", "name"), [(422, "validation_error"),
                                              (400, "validation_error"),
                                              (422, "missing_required_field")])
async def test_a_refused_batch_fails_as_a_whole(config, outgoing, status, name):
    # Strict validation: one bad message refuses the request, and nothing of it was sent.
    with pytest.raises(BatchRejected) as err:
        await send(config, outgoing, lambda r: error(status, name))
    assert err.value.status == status and name in str(err.value)


async def test_a_refused_sender_stops_the_send(config, outgoing):
    with pytest.raises(FatalTransportError, match="invalid_from_address"):
        await send(config, outgoing, lambda r: error(422, "invalid_from_address"))


async def test_a_concurrent_request_with_the_same_key_is_unknown(config, outgoing):
    # Only we use the key: a request with it still running at Resend is one of ours, which
    # may yet be accepted. "Retry later" would put the batch back under a new key.
    with pytest.raises(OutcomeUnknown, match="concurrent_idempotent_requests"):
        await send(config, outgoing, lambda r: error(409, "concurrent_idempotent_requests"))


def test_resend_remembers_a_key_for_a_day():
    from datetime import timedelta

    assert ResendTransport.idempotency_window == timedelta(hours=24)


async def test_a_key_used_for_another_payload_is_unknown(config, outgoing):
    with pytest.raises(OutcomeUnknown):
        await send(config, outgoing, lambda r: error(409, "invalid_idempotent_request"))


async def test_429_honours_retry_after(config, outgoing):
    calls, sleeps = [], []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(429, headers={"retry-after": "3"},
                                  json={"statusCode": 429, "name": "rate_limit_exceeded",
                                        "message": "Too many requests."})
        return httpx.Response(200, json=ok(3))

    results = await send(config, outgoing, handler, sleeps=sleeps)
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3
    assert len(calls) == 2 and sleeps[0] >= 3




async def test_a_timeout_is_resent_with_the_same_key_and_ends_sent(config, outgoing):
    seen = []

    def handler(request):
        seen.append((request.headers["Idempotency-Key"], request.content))
        if len(seen) == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json=ok(3))

    results = await send(config, outgoing, handler)
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3
    assert len(seen) == 2 and seen[0] == seen[1], "same key, same payload"


async def test_a_later_run_of_the_same_batch_uses_the_same_key(config, outgoing):
    keys = []

    def handler(request):
        keys.append(request.headers["Idempotency-Key"])
        return httpx.Response(200, json=ok(3))

    await send(config, outgoing, handler, batch_key="2026-W47/0")
    await send(config, outgoing, handler, batch_key="2026-W47/0")
    await send(config, outgoing, handler, batch_key="2026-W47/1")
    assert keys[0] == keys[1] != keys[2]


async def test_timeouts_every_time_are_unknown(config, outgoing):
    calls = []

    def handler(request):
        calls.append(1)
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(OutcomeUnknown):
        await send(config, outgoing, handler)
    assert len(calls) == 3




async def test_a_wrong_endpoint_stops_the_send(config, outgoing):
    with pytest.raises(FatalTransportError, match="provider_base_url"):
        await send(config, outgoing, lambda r: httpx.Response(404, text="Not Found"))


async def test_more_than_100_messages_is_refused(config, outgoing):
    transport = ResendTransport(config, transport=httpx.MockTransport(
        lambda r: httpx.Response(200, json=ok(101))))
    with pytest.raises(ValueError, match="maximum of 100"):
        await transport.send_batch(outgoing, personalized(outgoing, recipients(101)),
                                   batch_key="x")
    await transport.aclose()


async def test_a_used_up_quota_stops_the_send_instead_of_waiting(project):
    from newsletter.providers.resend import ResendTransport

    config = make_config(project, provider="resend")
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(429, headers={"retry-after": "60"},
                              json={"statusCode": 429, "name": "daily_quota_exceeded",
                                    "message": "You have reached your daily email quota."})

    transport = ResendTransport(config, transport=httpx.MockTransport(handler))
    outgoing = make_outgoing(config)
    with pytest.raises(FatalTransportError, match="daily_quota_exceeded"):
        await transport.send_batch(outgoing, personalized(outgoing, recipients(2)),
                                   batch_key="b")
    await transport.aclose()
    assert len(calls) == 1
