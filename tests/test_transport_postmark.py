"""Postmark: request bodies against Postmark's spec, and every answer shape."""

import json

import httpx
import pytest

from newsletter.audience.recipient import Recipient
from newsletter.providers.base import (
    BatchRejected,
    FatalTransportError,
    OutcomeKind,
    OutcomeUnknown,
)
from newsletter.providers.postmark import PostmarkTransport, build_batch, parse_batch
from tests.provider_specs import validate_request, validate_response
from tests.transport_fixtures import (
    API_KEY,
    make_config,
    make_outgoing,
    personalized,
    recipients,
    send_with,
)


@pytest.fixture
def config(project):
    return make_config(project, provider="postmark", provider_stream="newsletters")


@pytest.fixture
def outgoing(config):
    return make_outgoing(config)


def ok(n, start=1):
    return [
        {"ErrorCode": 0, "Message": "OK", "MessageID": f"id-{i}",
         "To": f"reader{i}@example.com", "SubmittedAt": "2026-11-23T08:00:00Z"}
        for i in range(start, start + n)
    ]


async def send(config, outgoing, handler, n=3, sleeps=None):
    return await send_with(PostmarkTransport, config, outgoing, handler, n=n, sleeps=sleeps)


def test_batch_body_matches_postmarks_spec(outgoing):
    body = build_batch(outgoing, personalized(outgoing, recipients(3)), "newsletters",
                       batch_key="b1")
    # Postmark's published swagger predates message streams and metadata; both are in its
    # current API reference (Email API: MessageStream, Metadata).
    validate_request("postmark", "/email/batch", "post", body,
                     documented_elsewhere=frozenset({"MessageStream", "Metadata"}))
    first = body[0]
    assert first["MessageStream"] == "newsletters"
    assert first["Metadata"] == {"edition": outgoing.edition_key, "subscriber_id": "1",
                                 "batch": "b1"}
    assert first["To"] == "Reader 1 <reader1@example.com>"
    headers = {h["Name"]: h["Value"] for h in first["Headers"]}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/unsubscribe/" in headers["List-Unsubscribe"]
    assert "Hi Reader," in first["TextBody"] and "Hi Reader," in first["HtmlBody"]
    assert body[1]["Headers"] != first["Headers"], "each message has its own unsubscribe link"


def test_fake_answers_match_the_spec():
    validate_response("postmark", "/email/batch", "post", 200, ok(2))


async def test_success_records_message_ids(config, outgoing):
    seen = {}

    def handler(request):
        seen["token"] = request.headers["X-Postmark-Server-Token"]
        seen["path"] = request.url.path
        return httpx.Response(200, json=ok(3))

    results = await send(config, outgoing, handler)
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3
    assert [r.message_id for r in results] == ["id-1", "id-2", "id-3"]
    assert seen == {"token": API_KEY, "path": "/email/batch"}


async def test_the_body_on_the_wire_is_the_batch_with_every_message_filled_in(config, outgoing):
    batch = [Recipient(id=7, email="jose@bücher.example", name="José Martí"),
             *recipients(2)]
    seen = {}

    def handler(request):
        seen["body"] = json.loads(request.content)
        seen["length"] = int(request.headers["Content-Length"])
        seen["bytes"] = len(request.content)
        return httpx.Response(200, json=ok(3))

    await send_with(PostmarkTransport, config, outgoing, handler, batch=batch)
    assert seen["body"] == build_batch(outgoing, personalized(outgoing, batch), "newsletters",
                                       batch_key="b1")
    assert seen["length"] == seen["bytes"]
    first = seen["body"][0]
    assert "Hi José," in first["TextBody"] and "Hi Jos&#233;," in first["HtmlBody"]
    assert "{{" not in first["HtmlBody"] and "@@" not in first["TextBody"]


async def test_partial_failure_marks_only_those_recipients(config, outgoing):
    answer = ok(3)
    answer[1] = {"ErrorCode": 406, "Message": "You tried to send to a recipient that has been "
                 "marked as inactive."}
    answer[2] = {"ErrorCode": 300, "Message": "Invalid 'To' address"}
    results = await send(config, outgoing, lambda r: httpx.Response(200, json=answer))
    assert [r.kind for r in results] == [OutcomeKind.SENT, OutcomeKind.FAILED, OutcomeKind.FAILED]
    assert results[1].bad_address and results[1].code == "406"
    assert not results[2].bad_address and "Invalid" in results[2].reason


async def test_an_account_error_in_a_batch_is_flagged_fatal(config, outgoing):
    answer = ok(2) + [{"ErrorCode": 405, "Message": "Not allowed to send"}]
    results = await send(config, outgoing, lambda r: httpx.Response(200, json=answer))
    assert results[0].kind == OutcomeKind.SENT and not results[0].fatal
    assert results[2].fatal and results[2].kind == OutcomeKind.UNTRIED


async def test_401_stops_the_send_and_never_shows_the_token(config, outgoing):
    def handler(request):
        return httpx.Response(401, json={"ErrorCode": 10, "Message": f"Bad token {API_KEY}"})

    with pytest.raises(FatalTransportError) as err:
        await send(config, outgoing, handler)
    assert err.value.status == 401
    assert API_KEY not in str(err.value) and "[redacted]" in str(err.value)


@pytest.mark.parametrize(("code", "cls"), [(300, BatchRejected), (412, FatalTransportError)])
async def test_422_is_rejected_or_fatal_by_error_code(config, outgoing, code, cls):
    answer = {"ErrorCode": code, "Message": "nope"}
    with pytest.raises(cls, match="error"):
        await send(config, outgoing, lambda r: httpx.Response(422, json=answer))


async def test_429_is_retried_after_the_time_asked(config, outgoing):
    calls, sleeps = [], []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "7"}, json={})
        return httpx.Response(200, json=ok(3))

    results = await send(config, outgoing, handler, sleeps=sleeps)
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3
    assert len(calls) == 2 and sleeps[0] >= 7








def test_a_short_answer_cannot_be_mapped_and_is_unknown(outgoing):
    with pytest.raises(OutcomeUnknown):
        parse_batch(personalized(outgoing, recipients(3)), ok(2))


async def test_more_than_500_messages_is_refused(config, outgoing):
    transport = PostmarkTransport(config, transport=httpx.MockTransport(
        lambda r: httpx.Response(200, json=json.loads("[]"))))
    with pytest.raises(ValueError, match="maximum of 500"):
        await transport.send_batch(outgoing, personalized(outgoing, recipients(501)),
                                   batch_key="x")
    await transport.aclose()
