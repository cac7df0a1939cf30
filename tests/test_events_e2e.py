"""End to end, per provider: send through the fake provider, hear back through signed webhooks
on the web route, and the next week's send skips who bounced, complained or unsubscribed."""

import json
import shutil
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from newsletter.cli.main import cli
from newsletter.config import load_config
from newsletter.delivery.send import SendOptions, send_edition
from newsletter.devtools.fake_provider import FakeProvider
from newsletter.providers._http import RetryPolicy
from newsletter.store import db
from newsletter.store.tables import deliveries, sends, subscribers
from tests import test_webhook_mailgun as mg
from tests import test_webhook_postmark as pm
from tests import test_webhook_resend as rs
from tests import test_webhook_sendgrid as sg
from tests import test_webhook_ses as ses
from tests.sending import send_deps
from tests.test_events_world import status_of, stored_events, webhook_app

WEEK, NEXT = "2026-W47", "2026-W48"
FAST = {"retry": RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01),
        "timeout": httpx.Timeout(5.0)}
READERS = ["gone@example.net", "complain@bücher.example", "leave@example.org",
           "slow@example.net", "fine@example.net", "stranger@example.net"]
SG_SIGNER, SNS_SIGNER = sg.Signer(), ses.Signer()


pytestmark = pytest.mark.usefixtures("engines_disposed")


def configure(project, database_url, fake, provider):
    environ = {
        "PROVIDER": provider, "PROVIDER_BASE_URL": fake.base_url, "SECRET_KEY": "s" * 32,
        "PROVIDER_API_KEY": "key-0123456789", "DATABASE_URL": database_url,
        "MAILGUN_DOMAIN": "mg.example.org", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret/EXAMPLE", "AWS_REGION": "us-east-1",
        "SENDGRID_WEBHOOK_PUBLIC_KEY": SG_SIGNER.public,
        "MAILGUN_WEBHOOK_SIGNING_KEY": mg.KEY, "RESEND_WEBHOOK_SECRET": rs.SECRET,
        "POSTMARK_WEBHOOK_AUTH": pm.CREDENTIALS, "SES_SNS_TOPIC_ARNS": ses.TOPIC,
    }
    return load_config(project / "newsletter.toml",
                       environ={f"NEWSLETTER_{k}": v for k, v in environ.items()})


def ledger(engine, week):
    """address -> (subscriber id, the provider's message id, the edition key) for a week."""
    s, d = subscribers.c, deliveries.c
    query = (sa.select(s.email, s.id, d.message_id, sends.c.content_hash)
             .select_from(deliveries.join(subscribers, s.id == d.subscriber_id)
                          .join(sends, sends.c.id == d.send_id))
             .where(sends.c.week == week, d.status == "sent"))
    with engine.connect() as conn:
        return {r.email: (r.id, r.message_id, f"{week}.{r.content_hash[:12]}")
                for r in conn.execute(query)}


# -- what each provider posts, for (kind, address, subscriber id, message id, edition) --------

def sendgrid_requests(items, when):
    names = {"bounced": {"event": "bounce", "type": "bounce", "status": "5.1.1"},
             "complained": {"event": "spamreport"}, "unsubscribed": {"event": "unsubscribe"},
             "deferred": {"event": "deferred", "response": "452 try later"},
             "delivered": {"event": "delivered"}}
    ts = int(when.timestamp())
    batch = [dict(names[kind], email=addr, timestamp=ts, sg_event_id=uuid.uuid4().hex,
                  sg_message_id=f"{mid}.filterdrecv-5645d9c87f-0", edition=edition,
                  subscriber_id=str(sid)) for kind, addr, sid, mid, edition in items]
    body = json.dumps(batch, ensure_ascii=False).encode()
    return [(body, SG_SIGNER.headers(body, ts))]


def mailgun_requests(items, when):
    names = {"bounced": {"event": "failed", "severity": "permanent", "reason": "bounce"},
             "complained": {"event": "complained"}, "unsubscribed": {"event": "unsubscribed"},
             "deferred": {"event": "failed", "severity": "temporary", "reason": "generic"},
             "delivered": {"event": "delivered"}}
    return [(mg.signed(dict(names[kind], id=uuid.uuid4().hex, timestamp=int(when.timestamp()),
                            recipient=addr,
                            message={"headers": {"message-id": mid.strip("<>")}},
                            **{"user-variables": {"edition": edition,
                                                  "subscriber_id": str(sid)}}), when=when), {})
            for kind, addr, sid, mid, edition in items]


def postmark_requests(items, when):
    def record(kind, addr, mid):
        if kind == "unsubscribed":
            return {"RecordType": "SubscriptionChange", "MessageID": mid, "Recipient": addr,
                    "Origin": "Recipient", "SuppressSending": True,
                    "SuppressionReason": "ManualSuppression", "ChangedAt": when.isoformat()}
        if kind == "delivered":
            return {"RecordType": "Delivery", "MessageID": mid, "Recipient": addr,
                    "DeliveredAt": when.isoformat()}
        types = {"bounced": "HardBounce", "complained": "SpamComplaint",
                 "deferred": "SoftBounce"}
        return {"RecordType": "SpamComplaint" if kind == "complained" else "Bounce",
                "ID": uuid.uuid4().int % 10**9, "Type": types[kind], "MessageID": mid,
                "Email": addr, "BouncedAt": when.isoformat(), "Inactive": kind != "deferred"}

    return [(pm.encode(record(kind, addr, mid)), pm.auth(pm.CREDENTIALS))
            for kind, addr, _, mid, _ in items]


def resend_requests(items, when):
    def payload(kind, addr, mid):
        if kind == "unsubscribed":  # a Resend audience contact: no message named at all
            return {"type": "contact.updated", "created_at": when.isoformat(),
                    "data": {"email": addr, "unsubscribed": True}}
        names = {"bounced": "email.bounced", "complained": "email.complained",
                 "deferred": "email.delivery_delayed", "delivered": "email.delivered"}
        data = {"email_id": mid, "to": [addr]}
        if kind == "bounced":
            data["bounce"] = {"type": "Permanent", "subType": "General", "message": "gone"}
        return {"type": names[kind], "created_at": when.isoformat(), "data": data}

    out = []
    for kind, addr, _, mid, _ in items:
        body = rs.encode(payload(kind, addr, mid))
        out.append((body, rs.sign(body, msg_id=f"msg_{uuid.uuid4().hex}", when=when)))
    return out


def ses_requests(items, when):
    def content(kind, addr, mid):
        mail = {"messageId": mid, "destination": [addr], "timestamp": when.isoformat()}
        if kind == "bounced":
            return {"eventType": "Bounce", "mail": mail, "bounce": {
                "bounceType": "Permanent", "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": addr, "status": "5.1.1"}]}}
        if kind == "deferred":
            return {"eventType": "DeliveryDelay", "mail": mail, "deliveryDelay": {
                "delayType": "MailboxFull", "delayedRecipients": [{"emailAddress": addr}]}}
        if kind == "complained":
            return {"eventType": "Complaint", "mail": mail, "complaint": {
                "complaintFeedbackType": "abuse", "complainedRecipients": [
                    {"emailAddress": addr}]}}
        if kind == "unsubscribed":
            return {"eventType": "Subscription", "mail": mail, "subscription": {
                "newTopicPreferences": {"unsubscribeAll": True}}}
        return {"eventType": "Delivery", "mail": mail, "delivery": {"recipients": [addr]}}

    return [(ses.body(SNS_SIGNER.sign(ses.notification(
        content(kind, addr, mid), message_id=str(uuid.uuid4()), when=when))),
             {"x-amz-sns-message-type": "Notification"})
            for kind, addr, _, mid, _ in items]


REQUESTS = {"sendgrid": sendgrid_requests, "mailgun": mailgun_requests,
            "postmark": postmark_requests, "resend": resend_requests, "ses": ses_requests}


@pytest.mark.parametrize("provider", list(REQUESTS))
def test_webhooks_after_a_send_keep_those_people_out_of_the_next_one(project, database_url,
                                                                     provider):
    shutil.copytree(project / "items" / WEEK, project / "items" / NEXT)
    with FakeProvider() as fake:
        config = configure(project, database_url, fake, provider)
        engine = db.connect(database_url)
        runner = CliRunner()
        env = {"NEWSLETTER_DATABASE_URL": database_url}
        for address in READERS:
            assert runner.invoke(cli, ["subscribers", "add", address], env=env).exit_code == 0
        first = send_edition(config, WEEK, SendOptions(interactive=False),
                             deps=send_deps(client=FAST))
        assert first.counts == {"sent": len(READERS)}
        sent = ledger(engine, WEEK)
        items = [(kind, addr, *sent[addr]) for kind, addr in [
            ("bounced", READERS[0]), ("complained", READERS[1]), ("unsubscribed", READERS[2]),
            ("deferred", READERS[3]), ("delivered", READERS[4])]]
        stranger_id = sent[READERS[5]][0]
        # A bounce naming an address of ours, for a message we never sent.
        items.append(("bounced", READERS[5], stranger_id, f"never-sent-{uuid.uuid4().hex}",
                      f"{WEEK}.ffffffffffff"))

        web = ses.Web({ses.CERT_URL: SNS_SIGNER.pem})
        app = webhook_app(config, transport=web.transport, clock=lambda: datetime.now(UTC))
        with TestClient(app) as client:
            for body, headers in REQUESTS[provider](items, datetime.now(UTC)):
                answer = client.post(f"/webhooks/{provider}", content=body, headers=headers)
                assert answer.status_code == 200, answer.text

        statuses = {a: status_of(engine, sent[a][0]) for a in READERS}
        assert statuses == dict(zip(READERS, ["bounced", "complained", "unsubscribed",
                                              "active", "active", "active"], strict=True))
        rows = stored_events(engine)
        assert len(rows) == len(items)
        never = [r for r in rows if r.recipient == READERS[5]]
        assert [(r.matched_by, r.subscriber_id, r.effect) for r in never] == [("", None, "none")]

        fake.records.clear()
        second = send_edition(config, NEXT, SendOptions(interactive=False),
                              deps=send_deps(client=FAST))
        assert second.counts == {"sent": 3}
        got = sorted(r.to.rsplit("<", 1)[-1].strip(">").lower() for r in fake.records)
        assert got == sorted(a.lower().replace("bücher", "xn--bcher-kva") for a in READERS[3:])

    status = runner.invoke(cli, ["--config", str(project / "newsletter.toml"), "status",
                                 "--week", WEEK], env=env)
    assert status.exit_code == 0, status.output
    assert ("feedback  1 bounced (16.67%), 1 complained (16.67%), 1 unsubscribed (16.67%)"
            in status.output)


def test_fake_records_name_recipients():
    """The fake provider's record of a recipient is what the test above compares."""
    with FakeProvider() as fake:
        httpx.post(f"{fake.base_url}/email/batch", headers={"X-Postmark-Server-Token": "t"},
                   json=[{"To": "Ana <ana@example.net>", "Subject": "s"}])
        assert [r.to for r in fake.records] == ["Ana <ana@example.net>"]
