"""Correctly signed webhook bodies of any shape get a 200 or the provider's 4xx, never a 500.

Each provider's body is signed with its own scheme (the helpers of tests/test_webhook_*.py)
and posted through the web app, with server exceptions turned into the 500 a provider would
see. Two kinds of body: arbitrary JSON, and a real event with a few of its fields replaced by
arbitrary values (or removed), which gets much further into the parsers. What a verified but
unusable body gets is decided per provider in ``feedback.webhooks.inbound``: Mailgun 406 and
SES 400 (both stop retrying on those), the others 200 with the body kept as one unknown event.
"""

from __future__ import annotations

import contextlib
import json
import logging

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from newsletter.feedback.events import EventKind
from tests import test_webhook_mailgun as mg
from tests import test_webhook_postmark as pm
from tests import test_webhook_resend as rs
from tests import test_webhook_sendgrid as sg
from tests import test_webhook_ses as ses
from tests.test_events_world import stored_events
from tests.webhook_helpers import SECRETS, SG, SNS, SNS_NOTIFICATION, signed_webhook_app

DEEP = 1000
# What a correctly signed JSON body may get, per provider (the table in inbound.py). SES also
# refuses (403) an envelope whose topic or certificate URL is not the one it was signed for.
ANSWERS = {"sendgrid": {200}, "resend": {200}, "postmark": {200}, "mailgun": {200, 406},
           "ses": {200, 400, 403}}
SHAPES = settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                           HealthCheck.too_slow])

# -- arbitrary JSON ---------------------------------------------------------------------------

_REMOVED = object()
scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=30)
           | st.sampled_from(["", "josé@bücher.example", "“quoted”", "2026-11-23T08:30:00Z",
                              "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                              "Permanent", "bounce", "failed", "Notification", "²", "１２",
                              "\x00"]))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12) | st.sampled_from(["name", "value", "edition",
                                                               "Type", "Message"]),
                      inner, max_size=4),
    max_leaves=12)


@st.composite
def altered(draw, event):
    """``event`` with one to three of its nodes, each found by a random walk from the top
    (the top itself kept: arbitrary JSON is the other strategy), replaced by arbitrary JSON
    or (in an object) removed."""
    for _ in range(draw(st.integers(1, 3))):
        event = _alter_one(draw, event, top=True)
    return event


def _alter_one(draw, value, *, top=False):
    if isinstance(value, dict) and value and (top or draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(value)))
        new = _alter_one(draw, value[key]) if draw(st.integers(0, 5)) else _REMOVED
        return {k: v for k, v in {**value, key: new}.items() if v is not _REMOVED}
    if isinstance(value, list) and value and (top or draw(st.integers(0, 3))):
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], _alter_one(draw, value[index]), *value[index + 1:]]
    return draw(json_values)


# -- signing and posting ----------------------------------------------------------------------


def encode(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def post(client, provider: str, body: bytes, headers: dict | None = None):
    """``body`` signed as ``provider`` signs (Mailgun and SES sign inside the body, so they
    are given the body's parts instead, by ``mailgun_body`` and ``ses_body``)."""
    if provider == "sendgrid":
        headers = SG.headers(body, sg.TS)
    elif provider == "resend":
        headers = rs.sign(body)
    elif provider == "postmark":
        headers = pm.auth(pm.CREDENTIALS)
    elif provider == "ses":
        headers = SNS_NOTIFICATION
    return client.post(f"/webhooks/{provider}", content=body, headers=headers or {})


def mailgun_body(event_data) -> bytes:
    return mg.signed(event_data)  # a fresh token each time: never a replay


def ses_body(envelope) -> bytes:
    """The envelope signed, when it has a Type SNS signs by (else it goes as it is)."""
    signable = isinstance(envelope, dict) and isinstance(envelope.get("Type"), str) \
        and envelope["Type"] in ses.SIGNED
    return ses.body(SNS.sign(envelope) if signable else envelope)


pytestmark = pytest.mark.usefixtures("engines_disposed")


@contextlib.contextmanager
def app_client(database_url):
    app = signed_webhook_app(database_url, **SECRETS)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.engine = app.state.engine
        yield client


@pytest.fixture
def client(database_url):
    with app_client(database_url) as test_client:
        yield test_client


def check(answer, provider: str) -> None:
    assert answer.status_code in ANSWERS[provider], (answer.status_code, answer.text[:200])


# -- one hypothesis test per provider, both kinds of body -------------------------------------


@SHAPES
@given(payload=json_values | altered([sg.BOUNCE, sg.SPAMREPORT]))
@example(payload={"event": "bounce"})  # an object, not the array SendGrid sends
@example(payload=[dict(sg.BOUNCE, timestamp=10**19)])
def test_sendgrid_any_signed_shape(client, payload):
    check(post(client, "sendgrid", encode(payload)), "sendgrid")


# Mailgun signs inside the body: arbitrary or altered event data under a true signature block,
# or the whole body, signature block and all, altered (refused, 406, but never a 500).
mailgun_bodies = ((json_values | altered(mg.FAILED) | altered(mg.COMPLAINED)).map(mailgun_body)
                  | json_values.map(encode)
                  | altered(json.loads(mailgun_body(mg.FAILED))).map(encode))


@SHAPES
@given(body=mailgun_bodies)
@example(body=mailgun_body(dict(mg.FAILED, event=[])))  # once "TypeError: unhashable type"
@example(body=mailgun_body(dict(mg.FAILED, event={})))
@example(body=mailgun_body(dict(mg.FAILED, **{"user-variables": {"subscriber_id": "²"}})))
@example(body=encode({"signature": {"timestamp": "1", "token": "t", "signature": "é"}}))
def test_mailgun_any_signed_shape(client, body):
    check(post(client, "mailgun", body), "mailgun")


@SHAPES
@given(payload=json_values | altered(rs.BOUNCED) | altered(rs.COMPLAINED))
@example(payload=dict(rs.BOUNCED, data=dict(rs.BOUNCED["data"], tags=[{"name": ["x"]}])))
def test_resend_any_signed_shape(client, payload):
    check(post(client, "resend", encode(payload)), "resend")


@SHAPES
@given(payload=json_values | altered(pm.BOUNCE) | altered(pm.CHANGE))
@example(payload=dict(pm.BOUNCE, BouncedAt="0001-01-01T00:00:00+05:00"))
def test_postmark_any_signed_shape(client, payload):
    check(post(client, "postmark", encode(payload)), "postmark")


# SES: arbitrary JSON as the envelope, the SES event inside a signed SNS envelope, the
# envelope itself altered (its Type kept: the test signer, like SNS, signs by it), or a signed
# envelope whose certificate URL is any text (it is read before the signature can be checked).
ses_envelopes = (json_values | json_values.map(ses.notification)
                 | altered(ses.BOUNCE).map(ses.notification)
                 | altered(ses.COMPLAINT).map(ses.notification)
                 | altered({k: v for k, v in ses.notification(ses.BOUNCE).items()
                            if k != "Type"}).map(lambda e: {**e, "Type": "Notification"}))
ses_bodies = (ses_envelopes.map(ses_body)
              | (st.text(max_size=80) | st.sampled_from(["https://[", "https://sns.us-east-1"
                                                          ".amazonaws.com:x/a.pem"])).map(
                  lambda url: ses.body(dict(SNS.sign(ses.notification(ses.BOUNCE)),
                                            SigningCertURL=url))))


@SHAPES
@given(body=ses_bodies)
@example(body=ses_body(ses.notification(dict(ses.BOUNCE, bounce=dict(
    ses.BOUNCE["bounce"], timestamp="9999-12-31T23:59:59-05:00")))))
@example(body=ses_body({**ses.notification(ses.BOUNCE), "Type": "Notification",
                        "Subject": []}))
@example(body=ses_body({"Type": [], "Message": "{}"}))  # once "TypeError: unhashable type"
def test_ses_any_signed_shape(client, body):
    check(post(client, "ses", body), "ses")


# -- too deep, and the decision on unusable bodies, spelled out -------------------------------

NESTED = "[" * DEEP + "]" * DEEP


def deep_bodies():
    """(provider, body) nested ``DEEP`` levels, signed wherever the body can be."""
    mailgun = mg.signed("@").replace(b'"@"', NESTED.encode())  # the signature block still true
    return [("sendgrid", NESTED.encode()), ("resend", NESTED.encode()),
            ("postmark", NESTED.encode()), ("mailgun", mailgun),
            ("ses", NESTED.encode()), ("ses", ses_body(ses.notification(NESTED)))]


@pytest.mark.parametrize(("provider", "body"), deep_bodies(),
                         ids=["sendgrid", "resend", "postmark", "mailgun", "ses-envelope",
                              "ses-message"])
def test_json_nested_a_thousand_deep_is_refused_in_one_log_line(client, caplog, provider,
                                                                 body):
    with caplog.at_level(logging.INFO):
        answer = post(client, provider, body)
    # Mailgun's every refusal is a 406, the one answer that stops its retries.
    assert answer.status_code == (406 if provider == "mailgun" else 400)
    assert "nested deeper than 64 levels" in answer.text
    lines = [r for r in caplog.records if r.name == "newsletter.web.webhooks"]
    assert len(lines) == 1 and "nested deeper than 64 levels" in lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records), "no traceback"
    assert stored_events(client.engine) == []
    # The connection and the app carry on: the next request is taken as usual.
    again = post(client, "postmark", pm.encode(pm.BOUNCE))
    assert again.status_code == 200 and again.json()["new"] == 1


@pytest.mark.parametrize("event", [[], {}, None, 7, ["failed"]],
                         ids=["list", "object", "null", "number", "list-of-the-name"])
def test_a_mailgun_event_that_is_not_a_name_is_406_and_nothing_is_stored(client, event):
    answer = post(client, "mailgun", mailgun_body(dict(mg.FAILED, event=event)))
    assert answer.status_code == 406 and "naming its event" in answer.text
    assert stored_events(client.engine) == []


UNUSABLE = [
    ("sendgrid", {"event": "bounce", "email": "josé@bücher.example"}),  # not in an array
    ("resend", {"type": "email.bounced", "data": ["ana@exämple.org"]}),  # data not an object
    ("postmark", [pm.BOUNCE]),  # a record, but in an array
]


@pytest.mark.parametrize(("provider", "payload"), UNUSABLE, ids=[p for p, _ in UNUSABLE])
def test_an_unusable_body_is_kept_once_as_one_unknown_event_for_providers_that_retry_a_4xx(
        client, caplog, provider, payload):
    with caplog.at_level(logging.INFO):
        first = post(client, provider, encode(payload))
    assert first.status_code == 200
    assert first.json() == {"events": 1, "new": 1, "duplicates": 0}
    assert any("kept a body it cannot read" in r.getMessage() for r in caplog.records)
    again = post(client, provider, encode(payload))  # the provider's retry of the delivery
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    [row] = stored_events(client.engine)
    assert (row.provider, row.kind, row.recipient) == (provider, EventKind.UNKNOWN, "")
    assert row.reason.startswith(f"unusable payload: {provider} webhook: ")
    assert row.subscriber_id is None and row.effect == "none"
    assert json.loads(json.loads(row.raw)) == payload, "the body is kept whole"


@pytest.mark.parametrize("message", ["[]", "“not JSON”", NESTED], ids=["list", "text", "deep"])
def test_an_unusable_ses_message_is_a_400_which_sns_does_not_retry(client, message):
    answer = post(client, "ses", ses_body(ses.notification(message)))
    assert answer.status_code == 400 and "SNS Message" in answer.text
    assert stored_events(client.engine) == []


@pytest.mark.parametrize("token", ["tok\u0000en", "tökén", "tok\nen"],
                         ids=["nul", "accents", "newline"])
def test_a_mailgun_token_that_is_not_mailguns_is_406_even_when_signed(client, token):
    # A NUL in the token once reached PostgreSQL (503, so Mailgun retried for 8 hours).
    answer = post(client, "mailgun", mg.signed(mg.FAILED, token=token))
    assert answer.status_code == 406 and "the token is not Mailgun's" in answer.text
    assert stored_events(client.engine) == []


@pytest.mark.parametrize("url", [
    "https://[sns.us-east-1.amazonaws.com/SimpleNotificationService-0000aaaa1111.pem",
    "https://sns.us-east-1.amazonaws.com:443x/SimpleNotificationService-0000aaaa1111.pem",
    "https://sns.us-east-1.amazonaws.com:99999/SimpleNotificationService-0000aaaa1111.pem",
], ids=["unclosed-bracket", "port-not-a-number", "port-out-of-range"])
def test_a_signing_cert_url_that_does_not_even_parse_is_refused(client, url):
    # Read before any signature can be checked: once a ValueError, a 500 to anyone.
    envelope = dict(SNS.sign(ses.notification(ses.BOUNCE)), SigningCertURL=url)
    answer = post(client, "ses", ses.body(envelope))
    assert answer.status_code == 403 and "SigningCertURL" in answer.text
