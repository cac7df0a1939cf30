"""POST /webhooks/{provider} through the web app: verify, store, apply; refuse, change nothing."""

import json
import logging

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter.feedback.events import EventKind
from newsletter.store.tables import events
from newsletter.web import webhooks
from tests import test_webhook_mailgun as mg
from tests import test_webhook_postmark as pm
from tests import test_webhook_resend as rs
from tests import test_webhook_sendgrid as sg
from tests import test_webhook_ses as ses
from tests.test_events_world import (
    SECRET,
    add_subscribers,
    make_config,
    record_send,
    status_of,
    stored_events,
    webhook_app,
)
from tests.webhook_helpers import SECRETS as SIGNED
from tests.webhook_helpers import SG, SNS, SNS_NOTIFICATION, signed_webhook_app, sns_certificates

# Postmark with two credentials configured, as while one is being rotated out.
SECRETS = {**SIGNED, "postmark_webhook_auth": ("old:pair", pm.CREDENTIALS)}


pytestmark = pytest.mark.usefixtures("engines_disposed")


@pytest.fixture
def web():
    return sns_certificates()


@pytest.fixture
def client(database_url, web):
    app = signed_webhook_app(database_url, web=web, **SECRETS)
    with TestClient(app) as test_client:
        test_client.engine = app.state.engine
        yield test_client


def sendgrid(client, *items, headers=None):
    body = json.dumps(list(items), ensure_ascii=False).encode()
    return client.post("/webhooks/sendgrid", content=body,
                       headers=headers or SG.headers(body, sg.TS))


def test_a_signed_sendgrid_batch_is_stored_once_and_applied(client):
    ana, ben = add_subscribers(client.engine, ["ana@example.net", "ben@bücher.example"])
    send_id = record_send(client.engine, {ana: "req-1", ben: "req-1"}, provider="sendgrid")
    bounce = dict(sg.BOUNCE, email="ana@example.net", sg_message_id="req-1.filter0077p1",
                  edition="", subscriber_id="")
    spam = dict(sg.SPAMREPORT, email="BEN@xn--bcher-kva.example", sg_message_id="req-1.filter1",
                sg_event_id="spam-1")
    answer = sendgrid(client, bounce, spam, bounce)
    assert answer.status_code == 200
    assert answer.json() == {"events": 3, "new": 2, "duplicates": 1}
    assert (status_of(client.engine, ana), status_of(client.engine, ben)) == ("bounced",
                                                                             "complained")
    rows = stored_events(client.engine)
    assert [(r.kind, r.send_id, r.matched_by, r.effect) for r in rows] == [
        ("bounced", send_id, "ledger", "suppressed"), ("complained", send_id, "ledger",
                                                       "suppressed")]
    assert json.loads(rows[0].raw) == bounce
    again = sendgrid(client, bounce, spam)
    assert again.status_code == 200 and again.json()["new"] == 0
    assert len(stored_events(client.engine)) == 2


@pytest.mark.parametrize(("provider", "body", "headers", "status"), [
    ("sendgrid", b'[{"event":"bounce"}]', SG.headers(b"[]", sg.TS), 403),
    ("sendgrid", b'[{"event":"bounce"}]', {}, 403),
    ("mailgun", mg.signed(mg.FAILED, key="not-the-key"), {}, 406),
    ("mailgun", b"not json", {}, 406),
    ("resend", rs.encode(rs.BOUNCED), rs.sign(b"{}"), 403),
    ("postmark", pm.encode(pm.BOUNCE), pm.auth("postmark:wrong"), 401),
    ("postmark", pm.encode(pm.BOUNCE), {}, 401),
    ("ses", ses.body(SNS.sign(ses.notification(ses.BOUNCE, topic=ses.FOREIGN))),
     SNS_NOTIFICATION, 403),
], ids=["sendgrid other body", "sendgrid unsigned", "mailgun wrong key", "mailgun not json",
        "resend other body", "postmark wrong pair", "postmark no auth", "ses foreign topic"])
def test_a_request_that_fails_verification_is_refused_and_changes_nothing(
        client, provider, body, headers, status):
    [ana] = add_subscribers(client.engine, ["ana@example.net"])
    answer = client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert answer.status_code == status
    if provider == "postmark":
        assert answer.headers["www-authenticate"].startswith("Basic realm=")
    assert stored_events(client.engine) == []
    assert status_of(client.engine, ana) == "active"


@pytest.mark.parametrize(("provider", "body", "status"), [
    ("sendgrid", b"[]", 403), ("mailgun", mg.signed(mg.FAILED), 406),
    ("resend", rs.encode(rs.BOUNCED), 403), ("postmark", pm.encode(pm.BOUNCE), 403),
    ("ses", ses.body(ses.notification(ses.BOUNCE)), 403)])
def test_a_provider_without_its_secret_refuses_its_webhook(database_url, provider, body,
                                                             status):
    app = webhook_app(make_config(database_url))
    with TestClient(app) as client:
        answer = client.post(f"/webhooks/{provider}", content=body,
                             headers=pm.auth(pm.CREDENTIALS) if provider == "postmark" else {})
        assert answer.status_code == status
        assert "is not set" in answer.text
        assert stored_events(app.state.engine) == []


def test_a_mailgun_token_replayed_with_another_event_is_refused(client):
    first = mg.signed(mg.FAILED, token="t" * 50)
    assert client.post("/webhooks/mailgun", content=first).status_code == 200
    retry = client.post("/webhooks/mailgun", content=first)
    assert retry.status_code == 200 and retry.json()["duplicates"] == 1, "a retry is fine"
    forged = mg.signed(dict(mg.FAILED, id="other-event", recipient="ana@example.net"),
                       token="t" * 50)
    answer = client.post("/webhooks/mailgun", content=forged)
    assert answer.status_code == 406 and "token already used" in answer.text
    assert [r.event_id for r in stored_events(client.engine)] == [
        f"{mg.FAILED['id']}@{mg.FAILED['timestamp']}"]


def test_head_get_and_unknown_providers(client):
    assert client.head("/webhooks/postmark").status_code == 200
    assert client.head("/webhooks/sparkpost").status_code == 404
    assert client.post("/webhooks/sparkpost", content=b"{}").status_code == 404
    assert client.get("/webhooks/sendgrid").status_code == 405


def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(client):
    big = b"[" + b" " * webhooks.MAX_BODY + b"]"
    assert client.post("/webhooks/sendgrid", content=big,
                       headers=SG.headers(big, sg.TS)).status_code == 413

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(9):
            yield b" " * (1024 * 1024)

    assert client.post("/webhooks/sendgrid", content=chunks(),
                       headers=SG.headers(b"", sg.TS)).status_code == 413
    assert stored_events(client.engine) == []


def test_a_database_failure_is_a_503_and_the_retry_stores_the_event_once(client, caplog):
    [ana] = add_subscribers(client.engine, ["ana@example.net"])
    record_send(client.engine, {ana: "pm-1"})
    body = pm.encode(dict(pm.BOUNCE, MessageID="pm-1", Email="ana@example.net"))
    events.drop(client.engine)
    with caplog.at_level(logging.ERROR, logger="newsletter.web.webhooks"):
        answer = client.post("/webhooks/postmark", content=body, headers=pm.auth(pm.CREDENTIALS))
    assert answer.status_code == 503, "the provider retries later"
    assert "ana@example.net" not in caplog.text, "no parameters in the log"
    assert status_of(client.engine, ana) == "active"
    events.create(client.engine)
    for _ in range(2):
        answer = client.post("/webhooks/postmark", content=body, headers=pm.auth(pm.CREDENTIALS))
        assert answer.status_code == 200
    assert len(stored_events(client.engine)) == 1
    assert status_of(client.engine, ana) == "bounced"


def test_the_log_names_counts_never_secrets_addresses_or_payloads(client, caplog):
    [ana] = add_subscribers(client.engine, ["ana@example.net"])
    record_send(client.engine, {ana: "pm-1"})
    body = pm.encode(dict(pm.BOUNCE, MessageID="pm-1", Email="ana@example.net"))
    with caplog.at_level(logging.INFO, logger="newsletter.web.webhooks"):
        client.post("/webhooks/postmark", content=body, headers=pm.auth(pm.CREDENTIALS))
        client.post("/webhooks/postmark", content=body, headers=pm.auth("postmark:guess"))
    assert "webhook postmark: 1 event(s), 1 new, 0 already stored; 1 suppressed" in caplog.text
    assert "refused (401)" in caplog.text
    for secret in ("pässwörd", "guess", "ana@example.net", "5.1.1", SECRET):
        assert secret not in caplog.text


def test_an_sns_subscription_is_confirmed_through_the_transport_seam(client, web):
    message = SNS.sign(ses.confirmation())
    answer = client.post("/webhooks/ses", content=ses.body(message),
                         headers={"content-type": "text/plain; charset=UTF-8",
                                  "x-amz-sns-message-type": "SubscriptionConfirmation"})
    assert answer.status_code == 200 and answer.json()["events"] == 0
    assert web.requests == [ses.CERT_URL, message["SubscribeURL"]]


# Every sample payload of the research notes (shared/research/web-and-webhooks.md), as posted.
SAMPLES = [
    ("sendgrid", sg.BOUNCE, "bounced"), ("sendgrid", sg.SPAMREPORT, "complained"),
    ("sendgrid", json.loads(sg.VECTOR_PAYLOAD)[0], "rejected"),
    ("mailgun", mg.FAILED, "bounced"), ("mailgun", mg.COMPLAINED, "complained"),
    ("resend", rs.BOUNCED, "bounced"), ("resend", rs.COMPLAINED, "complained"),
    ("ses", ses.BOUNCE, "bounced"), ("ses", ses.COMPLAINT, "complained"),
    ("postmark", pm.BOUNCE, "bounced"), ("postmark", pm.SPAM, "complained"),
    ("postmark", pm.CHANGE, "bounced"),
]


def post_sample(client, provider, payload):
    if provider == "sendgrid":
        return sendgrid(client, payload)
    if provider == "mailgun":
        return client.post("/webhooks/mailgun", content=mg.signed(payload))
    if provider == "resend":
        body = rs.encode(payload)
        return client.post("/webhooks/resend", content=body, headers=rs.sign(body))
    if provider == "ses":
        return client.post("/webhooks/ses", content=ses.body(SNS.sign(ses.notification(payload))),
                           headers=SNS_NOTIFICATION)
    return client.post("/webhooks/postmark", content=pm.encode(payload),
                       headers=pm.auth(pm.CREDENTIALS))


@pytest.mark.parametrize(("provider", "payload", "kind"), SAMPLES,
                         ids=[f"{p}-{k}-{i}" for i, (p, _, k) in enumerate(SAMPLES)])
def test_every_research_sample_is_stored_as_its_kind_and_touches_nobody(client, provider,
                                                                         payload, kind):
    # Messages we never sent: stored, unmatched, nobody changed.
    [richard] = add_subscribers(client.engine, ["richard@example.com"])
    answer = post_sample(client, provider, payload)
    assert answer.status_code == 200
    rows = stored_events(client.engine)
    assert rows and {r.kind for r in rows} == {kind}
    assert all(r.subscriber_id is None and r.effect == "none" for r in rows)
    assert status_of(client.engine, richard) == "active"
    with client.engine.connect() as conn:
        providers = set(conn.execute(sa.select(events.c.provider)).scalars())
    assert providers == {provider}
    assert EventKind(kind)
