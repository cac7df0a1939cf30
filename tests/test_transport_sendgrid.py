"""SendGrid: the content-once request against SendGrid's spec, what each recipient receives
after SendGrid's substitution, and every answer shape."""

import hashlib
import json
import re
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.audience.recipient import Recipient
from newsletter.errors import ConfigError
from newsletter.providers.base import BatchRejected, FatalTransportError, OutcomeKind
from newsletter.providers.sendgrid import (
    SendGridTransport,
    build_mail,
    display_name,
    parse_rejected,
    pick_nonce,
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

PATH = "/v3/mail/send"
# A subscriber's name: one line, any other character a database can hold.
NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))  # names are one line
BOB = Recipient(id=42, email="bob@exämple.com", name='<Bob> & "B"')


@pytest.fixture
def config(project):
    return make_config(project, provider="sendgrid")


@pytest.fixture
def outgoing(config):
    return make_outgoing(config)


def validate_mail_send(body):
    validate_request("sendgrid", PATH, "post", body)


def validate_answer(status, body):
    validate_response("sendgrid", PATH, "post", status, body)


def deliver(body):
    """What each personalization's recipient receives, substituting as SendGrid does.

    Two ways, which must agree: one left-to-right pass over all tags, and tag after tag in
    turn (as a naive implementation would, so a value holding a tag would show).
    """
    text, html = (c["value"] for c in body["content"])
    out = []
    for p in body["personalizations"]:
        subs = p["substitutions"]
        pattern = re.compile("|".join(re.escape(t) for t in sorted(subs, key=len, reverse=True)))
        one_pass = [pattern.sub(lambda m, s=subs: s[m.group(0)], part) for part in (html, text)]
        in_turn = [html, text]
        for tag, value in subs.items():
            in_turn = [part.replace(tag, value) for part in in_turn]
        assert one_pass == in_turn
        out.append((p, *one_pass))
    return out


def assert_delivered_faithfully(outgoing, batch):
    body = build_mail(outgoing, personalized(outgoing, batch))
    for recipient, (p, html, text) in zip(batch, deliver(body), strict=True):
        personal = personal_parts(outgoing, recipient)
        assert html == personal.html
        assert text == personal.text
        assert p["headers"] == personal.headers
    return body


async def send(config, outgoing, handler, n=3, sleeps=None, batch=None):
    return await send_with(SendGridTransport, config, outgoing, handler, n=n, sleeps=sleeps,
                           batch=batch)


def accepted(request):
    return httpx.Response(202, headers={"X-Message-Id": "sg-abc123"})


# --- the request ---------------------------------------------------------------------------


def test_mail_body_matches_sendgrids_spec(outgoing):
    body = build_mail(outgoing, personalized(outgoing, [*recipients(2), BOB]))
    validate_mail_send(body)
    assert body["from"] == {"email": "editors@fivethings.example.com", "name": "Five Things"}
    assert body["reply_to"] == {"email": "editors@fivethings.example.com"}
    assert body["subject"] == outgoing.subject
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    # Our List-Unsubscribe, not a second one from SendGrid's subscription tracking.
    assert body["tracking_settings"] == {"subscription_tracking": {"enable": False}}
    first = body["personalizations"][0]
    assert first["to"] == [{"email": "reader1@example.com", "name": "Reader 1"}]
    assert first["custom_args"] == {"edition": outgoing.edition_key, "subscriber_id": "1"}
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert set(first["headers"]) == {"List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"}
    assert all(isinstance(v, str) for v in first["substitutions"].values())
    # The IDN domain goes out in its ASCII form; a name with specials is a quoted string.
    assert body["personalizations"][2]["to"] == [
        {"email": "bob@xn--exmple-cua.com", "name": '"<Bob> & \\"B\\""'}
    ]


def test_each_recipient_receives_exactly_their_own_message(outgoing):
    body = assert_delivered_faithfully(outgoing, [*recipients(3), BOB])
    delivered = deliver(body)
    links = [p["headers"]["List-Unsubscribe"] for p, _, _ in delivered]
    assert len(set(links)) == 4, "each recipient has their own unsubscribe link"
    for (_, html, text), recipient in zip(delivered, [*recipients(3), BOB], strict=True):
        url = outgoing.personalize(recipient).values["unsubscribe_url"]
        assert f'href="{url}"' in html and f"Unsubscribe: {url}" in text
    _, bob_html, bob_text = delivered[3]
    assert "Hi &lt;Bob&gt;," in bob_html and "<Bob>," not in bob_html
    assert "Hi <Bob>," in bob_text


def test_the_content_is_sent_once_with_tags_that_never_collide(outgoing):
    body = build_mail(outgoing, personalized(outgoing, recipients(3)))
    text, html = (c["value"] for c in body["content"])
    rendered = outgoing
    assert html.startswith(rendered.html.literals[0]) and text.endswith(rendered.text.literals[-1])
    tags = set(body["personalizations"][0]["substitutions"])
    # Separate tags for the HTML-escaped and the raw value of each field, each in one part,
    # as often as the field occurs there.
    assert len(tags) == len(set(rendered.html.fields)) + len(set(rendered.text.fields))
    for tag in tags:
        assert (tag in html) != (tag in text)
    assert sum(html.count(t) for t in tags) == len(rendered.html.fields)
    assert sum(text.count(t) for t in tags) == len(rendered.text.fields)
    assert "reader1@example.com" not in html and "reader1@example.com" not in text
    assert all(p["substitutions"].keys() == tags for p in body["personalizations"])


def test_a_nonce_found_in_the_content_or_a_value_is_not_used(outgoing):
    assert pick_nonce("seed", ["nothing here"]) == hashlib.sha256(b"seed:0").hexdigest()[:8]
    taken = hashlib.sha256(b"seed:0").hexdigest()[:8]
    assert pick_nonce("seed", [f"x{taken}y"]) == hashlib.sha256(b"seed:1").hexdigest()[:8]
    # A subscriber whose name holds the first choice of tag still gets a faithful message.
    first = hashlib.sha256(
        f"{outgoing.content_hash}:0".encode()).hexdigest()[:8]
    sly = Recipient(id=9, email="sly@example.com", name=f"-{first}h0- -{first}t1-")
    body = assert_delivered_faithfully(outgoing, [sly, *recipients(2)])
    assert not any(first in tag for tag in body["personalizations"][0]["substitutions"])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(NAME_CHARS, max_size=30), min_size=1, max_size=4))
def test_any_names_survive_the_substitution(outgoing, names):
    batch = [Recipient(id=i + 1, email=f"r{i}@example.com", name=name)
             for i, name in enumerate(names)]
    body = assert_delivered_faithfully(outgoing, batch)
    validate_mail_send(body)


def test_display_names_with_specials_are_quoted():
    assert display_name(" Ada Lovelace ") == "Ada Lovelace"
    assert display_name("Doe, Jane") == '"Doe, Jane"'
    assert display_name('a\\b"c') == '"a\\\\b\\"c"'


async def test_a_batch_of_1000_costs_well_under_2kb_per_recipient(config, outgoing):
    seen = {}

    def handler(request):
        seen["size"] = len(request.content)
        return accepted(request)

    results = await send(config, outgoing, handler, n=1000)
    assert len(results) == 1000
    rendered = outgoing
    edition = sum(len(x) for x in rendered.html.literals + rendered.text.literals)
    assert edition > 25_000, "the edition itself is large; it must be sent only once"
    assert seen["size"] / 1000 < 2048, f"{seen['size'] / 1000:.0f} bytes per recipient"


# --- the answers ---------------------------------------------------------------------------


async def test_accepted_marks_everyone_sent_with_the_message_id(config, outgoing):
    seen = {}

    def handler(request):
        seen["auth"] = request.headers["Authorization"]
        seen["url"] = str(request.url)
        seen["body"] = json.loads(request.content)
        return accepted(request)

    results = await send(config, outgoing, handler)
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3
    assert {r.message_id for r in results} == {"sg-abc123"}
    assert seen["auth"] == f"Bearer {API_KEY}"
    assert seen["url"] == "https://api.sendgrid.com/v3/mail/send"
    validate_mail_send(seen["body"])


async def test_provider_base_url_overrides_the_endpoint(project, outgoing):
    config = make_config(project, provider="sendgrid",
                         provider_base_url="https://api.eu.sendgrid.com")
    urls = []

    def handler(request):
        urls.append(str(request.url))
        return accepted(request)

    await send(config, outgoing, handler, n=1)
    assert urls == ["https://api.eu.sendgrid.com/v3/mail/send"]


def test_the_api_key_is_required(project):
    config = make_config(project, provider="sendgrid", provider_api_key="")
    with pytest.raises(ConfigError, match="provider_api_key"):
        SendGridTransport(config)


async def test_a_refused_personalization_fails_only_that_recipient(config, outgoing):
    answer = {"errors": [{"message": "Does not contain a valid address.",
                          "field": "personalizations.1.to.0.email", "help": {}}]}
    validate_answer(400, answer)
    results = await send(config, outgoing, lambda r: httpx.Response(400, json=answer))
    assert [r.kind for r in results] == [OutcomeKind.RETRY, OutcomeKind.FAILED, OutcomeKind.RETRY]
    assert results[1].bad_address and "valid address" in results[1].reason
    assert not results[0].bad_address


def test_an_error_outside_the_personalizations_cannot_be_split(outgoing):
    answer = {"errors": [{"message": "bad", "field": "personalizations.0.to.0.email"},
                         {"message": "also bad", "field": None}]}
    batch = personalized(outgoing, recipients(2))
    assert parse_rejected(batch, answer) is None
    assert parse_rejected(batch, {"errors": [{"field": "personalizations.5"}]}) is None


async def test_a_refused_sender_stops_the_send(config, outgoing):
    answer = {"errors": [{"message": "The from email does not contain a valid address.",
                          "field": "from.email"}]}
    validate_answer(400, answer)
    with pytest.raises(FatalTransportError, match="sender or content"):
        await send(config, outgoing, lambda r: httpx.Response(400, json=answer))


@pytest.mark.parametrize("status", [400, 413])
async def test_other_refusals_reject_the_batch(config, outgoing, status):
    answer = {"errors": [{"message": "content too large" if status == 413 else "invalid",
                          "field": "null"}]}
    validate_answer(status, answer)
    with pytest.raises(BatchRejected) as err:
        await send(config, outgoing, lambda r: httpx.Response(status, json=answer))
    assert err.value.status == status


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_stop_the_send_and_never_show_the_key(config, outgoing,
                                                                         status):
    # The spec types "field" as a string (its examples say "null"); SendGrid itself sends
    # JSON null, which the parser takes too (test_an_error_outside_...).
    answer = {"errors": [{"message": f"authorization required for {API_KEY}",
                          "field": "null"}]}
    validate_answer(status, answer)
    with pytest.raises(FatalTransportError) as err:
        await send(config, outgoing, lambda r: httpx.Response(status, json=answer))
    assert err.value.status == status
    assert API_KEY not in str(err.value) and API_KEY not in err.value.body
    assert "[redacted]" in str(err.value)


async def test_429_waits_until_x_ratelimit_reset(config, outgoing):
    calls, sleeps = [], []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            reset = str(int(time.time()) + 9)
            return httpx.Response(429, headers={"X-RateLimit-Reset": reset},
                                  json={"errors": [{"message": "too many requests"}]})
        return accepted(request)

    results = await send(config, outgoing, handler, sleeps=sleeps)
    assert [r.kind for r in results] == [OutcomeKind.SENT] * 3
    assert len(calls) == 2 and 7 <= sleeps[0] <= 10










async def test_a_wrong_endpoint_stops_the_send(config, outgoing):
    answer = {"errors": [{"message": "not found", "field": "null"}]}
    with pytest.raises(FatalTransportError, match="provider_base_url"):
        await send(config, outgoing, lambda r: httpx.Response(404, json=answer))


async def test_more_than_1000_recipients_is_refused(config, outgoing):
    transport = SendGridTransport(config, transport=httpx.MockTransport(accepted))
    with pytest.raises(ValueError, match="maximum of 1000"):
        await transport.send_batch(outgoing, personalized(outgoing, recipients(1001)),
                                   batch_key="x")
    await transport.aclose()
