"""Acceptance events: SendGrid's ``processed`` and SES's ``Send``, posted signed to the webhook
route, are stored as ``accepted`` and change no subscriber; from them the event log
(``delivery.reconcile_events.EventLogReconciler``) resolves the unknown rows of a send that
crashed, on SQLite and PostgreSQL.

The world: a send of six subscribers in two batches of three. The first batch's answer was
lost (its rows are ``unknown``); the second went out normally a minute later. The events are
built from the requests the transports build (SendGrid's ``custom_args``, SES's
``EmailTags``), so a change to what the transports put into a message shows here.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter.audience.recipient import Recipient
from newsletter.delivery import ledger
from newsletter.delivery.ledger import reconciling
from newsletter.delivery.reconcile import Reconciliation
from newsletter.delivery.reconcile_events import DEFAULT_SETTLE, EventLogReconciler
from newsletter.feedback.events import EventKind
from newsletter.feedback.webhooks import sendgrid as sendgrid_hook
from newsletter.feedback.webhooks import ses as ses_hook
from newsletter.providers import sendgrid, ses
from newsletter.providers.base import Outcome, OutcomeKind, UnknownBatch, Verdict
from newsletter.store.db import connect
from newsletter.store.tables import batches, deliveries, events, sends
from tests import ledger_helpers
from tests import test_webhook_sendgrid as sg
from tests import test_webhook_ses as sns
from tests.test_events_world import add_subscribers, status_of, stored_events
from tests.transport_fixtures import make_config, make_outgoing, personalized
from tests.webhook_helpers import SECRETS, SG, SNS, SNS_NOTIFICATION, signed_webhook_app

pytestmark = pytest.mark.usefixtures("engines_disposed")

PEOPLE = [("jose@bücher.example", "José Ñúñez"), ("zoe@münchen.example", "Zoë Ångström"),
          ("rene@café.example", "René “Renny” Lévesque"), ("ana@example.com", "Ana"),
          ("soren@øresund.example", "Søren Kierkegård"), ("mia@example.com", "Mia")]
FIRST_AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)   # the batch whose answer was lost
LATER_AT = FIRST_AT + timedelta(minutes=1)            # the batch after it, sent normally
SETTLED = FIRST_AT + DEFAULT_SETTLE
TOO_SOON = SETTLED - timedelta(seconds=1)
EVENT_NAME = {"sendgrid": "'processed'", "ses": "'Send'"}


@dataclass
class World:
    provider: str
    database_url: str
    engine: sa.Engine
    send_id: int
    outgoing: object
    lost: list[Recipient]     # the first batch's recipients, unknown
    later: list[Recipient]    # the second batch's, sent
    lost_key: str
    later_ids: dict[int, str]  # the message ids the second batch was answered with


def _request_id(provider: str, batch: str) -> str:
    """A message id as the provider answers it: SendGrid one per request, SES one per mail."""
    return f"req-{batch}" if provider == "sendgrid" else f"0100019a{uuid.uuid4().hex}-000000"


def _claim(engine, send_id, worker, created_at) -> ledger.Claim:
    claim = ledger.claim(engine, send_id, worker, 3)
    assert claim is not None
    with engine.begin() as conn:  # the batch's time, fixed rather than the wall clock's
        conn.execute(batches.update().where(batches.c.key == claim.batch_key)
                     .values(created_at=created_at))
    return claim


def crashed_send(database_url, project, provider) -> World:
    config = make_config(project, provider=provider)
    outgoing = make_outgoing(config)
    engine = connect(database_url)
    ids = add_subscribers(engine, [email for email, _ in PEOPLE])
    names = dict(zip(ids, (name for _, name in PEOPLE), strict=True))
    send, _ = ledger.open_send(engine, "2026-W47", outgoing.content_hash, outgoing.subject,
                               provider)
    worker = ledger_helpers.register_worker(engine, send.id)
    lost = _claim(engine, send.id, worker, FIRST_AT)
    ledger.record(engine, send.id, worker, lost,
                  [Outcome(r.id, OutcomeKind.UNKNOWN, reason="timed out")
                   for r in lost.recipients], max_attempts=3, retry_delay=0)
    later = _claim(engine, send.id, worker, LATER_AT)
    shared = _request_id(provider, "later")
    later_ids = {r.id: shared if provider == "sendgrid" else _request_id(provider, "")
                 for r in later.recipients}
    ledger.record(engine, send.id, worker, later,
                  [Outcome(r.id, OutcomeKind.SENT, message_id=later_ids[r.id])
                   for r in later.recipients], max_attempts=3, retry_delay=0)
    ledger_helpers.unregister_worker(engine, worker)
    with engine.begin() as conn:
        conn.execute(sends.update().where(sends.c.id == send.id).values(status="done"))

    def named(claim):
        return [Recipient(r.id, r.email, names[r.id]) for r in claim.recipients]

    return World(provider, database_url, engine, send.id, outgoing, named(lost), named(later),
                 lost.batch_key, later_ids)


# -- what the providers post ------------------------------------------------------------------

def processed_events(outgoing, people, request_id) -> list[dict]:
    """SendGrid's ``processed`` event (its event reference's example) for each personalization
    of the request the transport builds, custom args merged in as SendGrid merges them."""
    mail = sendgrid.build_mail(outgoing, personalized(outgoing, people))
    return [{"email": p["to"][0]["email"], "timestamp": sg.TS, "pool": {"name": "news", "id": 210},
             "smtp-id": f"<{uuid.uuid4().hex[:12]}.dfd.64b469@ismtpd-555>",
             "event": "processed", "category": [], "sg_event_id": uuid.uuid4().hex,
             "sg_message_id": f"{request_id}.filterdrecv-5645d9c87f-cx8mx-1-0",
             **p["custom_args"]} for p in mail["personalizations"]]


def send_event(outgoing, person, message_id, *, destinations=None) -> dict:
    """SES's ``Send`` event (configuration-set event publishing) for the request the
    transport builds: its destination, its tags as SES reports them (a list per name)."""
    request = ses.build_request(outgoing, person, configuration_set="newsletter")
    tags = {t["Name"]: [t["Value"]] for t in request["EmailTags"]}
    return {"eventType": "Send", "send": {}, "mail": {
        "timestamp": "2026-11-23T08:00:01.145Z", "source": outgoing.sender.envelope,
        "sendingAccountId": "123456789012", "messageId": message_id,
        "destination": destinations or request["Destination"]["ToAddresses"],
        "headersTruncated": False,
        "commonHeaders": {"messageId": person.message_id,
                          "subject": outgoing.subject},
        "tags": {"ses:configuration-set": ["newsletter"], **tags}}}


def post_acceptances(world: World, people: list[Recipient], message_ids: dict[int, str]):
    """Post the provider's acceptance events for ``people`` to the webhook route."""
    app = signed_webhook_app(world.database_url, **SECRETS)
    with TestClient(app) as client:
        if world.provider == "sendgrid":
            events = [e for p in people for e in processed_events(
                world.outgoing, [p], message_ids[p.id])]
            body = json.dumps(events, ensure_ascii=False).encode()
            answers = [client.post("/webhooks/sendgrid", content=body,
                                   headers=SG.headers(body, sg.TS))]
        else:
            answers = [client.post("/webhooks/ses", headers=SNS_NOTIFICATION, content=sns.body(
                SNS.sign(sns.notification(send_event(
                    world.outgoing, world.outgoing.personalize(p), message_ids[p.id]),
                    message_id=str(uuid.uuid4()))))) for p in people]
    for answer in answers:
        assert answer.status_code == 200, answer.text


# -- the webhooks store acceptances -----------------------------------------------------------

def test_sendgrids_processed_event_is_an_acceptance_with_the_requests_id():
    [event] = sendgrid_hook.parse(json.dumps([{
        "email": "example@test.com", "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "event": "processed",
        "category": "cat facts", "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    }]).encode())
    assert event.kind == EventKind.ACCEPTED
    assert event.provider_message_id == "14c5d75ce93.dfd.64b469"
    assert event.reason == ""


def test_an_ses_send_event_is_one_acceptance_per_destination(project):
    outgoing = make_outgoing(make_config(project, provider="ses"))
    person = outgoing.personalize(Recipient(7, "jose@bücher.example", "José Ñúñez"))
    content = send_event(outgoing, person, "0100019a-0001-000000",
                         destinations=["jose@xn--bcher-kva.example", "zoe@münchen.example"])
    events = ses_hook.parse(sns.body(sns.notification(content, message_id="sns-1")))
    assert [(e.kind, e.recipient, e.event_id) for e in events] == [
        (EventKind.ACCEPTED, "jose@xn--bcher-kva.example", "sns-1:jose@xn--bcher-kva.example"),
        (EventKind.ACCEPTED, "zoe@münchen.example", "sns-1:zoe@münchen.example")]
    # The tags give the edition back with its dot, and SES's id is the message's.
    assert events[0].metadata == {"edition": outgoing.edition_key, "subscriber_id": "7"}
    assert events[0].provider_message_id == "0100019a-0001-000000"
    assert events[0].occurred_at == datetime(2026, 11, 23, 8, 0, 1, 145000, tzinfo=UTC)


@pytest.mark.parametrize("provider", ["sendgrid", "ses"])
def test_acceptances_posted_to_the_webhook_are_stored_for_their_rows_and_change_nobody(
        database_url, project, provider):
    world = crashed_send(database_url, project, provider)
    lost_id = _request_id(provider, "lost")
    # One of the lost batch (the ledger has no message id for it: found by what it carried),
    # and the later batch (found by the message id the ledger recorded).
    heard = [world.lost[1], *world.later]
    post_acceptances(world, heard, {world.lost[1].id: lost_id, **world.later_ids})
    rows = stored_events(world.engine)
    assert [(r.kind, r.subscriber_id, r.send_id, r.effect) for r in rows] == [
        ("accepted", p.id, world.send_id, "none") for p in heard]
    assert rows[0].provider_message_id == lost_id
    assert rows[0].meta == {"edition": world.outgoing.edition_key,
                            "subscriber_id": str(world.lost[1].id)}
    assert [r.matched_by for r in rows[1:]] == ["ledger"] * 3
    everyone = world.lost + world.later
    assert {status_of(world.engine, p.id) for p in everyone} == {"active"}


# -- the event log resolves the unknown rows --------------------------------------------------

def unknown_batch(world: World) -> UnknownBatch:
    [batch] = reconciling.unknown_batches(world.engine, world.send_id,
                                          edition_key=world.outgoing.edition_key,
                                          subject=world.outgoing.subject, repeats=None,
                                          now=SETTLED)
    assert batch.key == world.lost_key and batch.sent_at == FIRST_AT
    return batch


def ask(world: World, *, now: datetime):
    log = EventLogReconciler(world.provider, world.engine, world.send_id)
    findings = asyncio.run(log.reconcile(unknown_batch(world), now=now))
    return {f.subscriber_id: f for f in findings}


def table(world: World):
    with world.engine.connect() as conn:
        return {r.subscriber_id: r for r in conn.execute(
            sa.select(deliveries).where(deliveries.c.send_id == world.send_id))}


@pytest.fixture(params=["sendgrid", "ses"])
def world(request, database_url, project) -> World:
    return crashed_send(database_url, project, request.param)


def test_an_accepted_row_is_found_and_the_rest_are_not_accepted_once_later_ones_were_heard(
        world):
    one, two, three = world.lost
    lost_id = _request_id(world.provider, "lost")
    post_acceptances(world, [two, *world.later], {two.id: lost_id, **world.later_ids})
    found = ask(world, now=SETTLED)
    assert (found[two.id].verdict, found[two.id].message_id) == (Verdict.ACCEPTED, lost_id)
    assert {found[p.id].verdict for p in (one, three)} == {Verdict.NOT_ACCEPTED}
    assert "reported later batches" in found[one.id].reason


def test_without_a_later_batch_heard_the_missing_rows_stay_undecided(world):
    one, two, three = world.lost
    post_acceptances(world, [two], {two.id: _request_id(world.provider, "lost")})
    found = ask(world, now=SETTLED)
    assert found[two.id].verdict is Verdict.ACCEPTED
    assert {found[p.id].verdict for p in (one, three)} == {Verdict.UNDECIDED}
    assert "none heard yet for a later batch" in found[one.id].reason


def test_with_no_acceptance_heard_at_all_the_reason_names_the_event_to_subscribe_to(world):
    found = ask(world, now=SETTLED)
    assert {f.verdict for f in found.values()} == {Verdict.UNDECIDED}
    reason = found[world.lost[0].id].reason
    assert f"is the webhook subscribed to {EVENT_NAME[world.provider]} events?" in reason
    # Nothing heard at all: waiting would not help, so the send is not held for the batch
    # to settle (the loop asks the reconciler's ``settle`` after each answer).
    log = EventLogReconciler(world.provider, world.engine, world.send_id)
    asyncio.run(log.reconcile(unknown_batch(world), now=FIRST_AT))
    assert log.settle == timedelta(0)


def test_before_the_batch_has_settled_the_missing_rows_stay_undecided(world):
    one, two, three = world.lost
    post_acceptances(world, [two, *world.later],
                     {two.id: _request_id(world.provider, "lost"), **world.later_ids})
    found = ask(world, now=TOO_SOON)
    assert found[two.id].verdict is Verdict.ACCEPTED   # found is found, at once
    assert {found[p.id].verdict for p in (one, three)} == {Verdict.UNDECIDED}
    assert "asked again after 2026-11-23 08:10:00 UTC" in found[one.id].reason


def test_an_acceptance_from_another_send_resolves_nothing_in_this_one(world):
    # Last week's send reached the same subscriber, and its webhook reported it accepted.
    one = world.lost[0]
    with world.engine.begin() as conn:
        other = conn.execute(sends.insert().values(
            week="2026-W46", content_hash="f" * 64, subject="Last week", provider=world.provider,
            status="done", total=1, created_at=FIRST_AT - timedelta(days=7),
            updated_at=FIRST_AT, finished_at=FIRST_AT)).inserted_primary_key[0]
        conn.execute(deliveries.insert().values(
            send_id=other, subscriber_id=one.id, status="sent", attempts=1,
            message_id="req-last-week", updated_at=FIRST_AT))
        conn.execute(events.insert().values(
            provider=world.provider, event_id="last-week", kind="accepted", recipient=one.email,
            reason="", code="", provider_message_id="req-last-week", message_id="", meta={},
            raw="{}", occurred_at=FIRST_AT, received_at=FIRST_AT, subscriber_id=one.id,
            send_id=other, matched_by="ledger", effect="none"))
    found = ask(world, now=SETTLED)
    assert found[one.id].verdict is Verdict.UNDECIDED
    assert "is the webhook subscribed" in found[one.id].reason


def test_a_resumed_send_marks_the_found_row_sent_and_sends_the_others_again(world):
    one, two, three = world.lost
    lost_id = _request_id(world.provider, "lost")
    post_acceptances(world, [two, *world.later], {two.id: lost_id, **world.later_ids})
    log = EventLogReconciler(world.provider, world.engine, world.send_id)
    run = Reconciliation(log, world.engine, world.send_id, world.outgoing.edition_key,
                         world.outgoing.subject, clock=lambda: SETTLED)
    moved = asyncio.run(run.run_pass())
    assert moved == {Verdict.ACCEPTED: 1, Verdict.NOT_ACCEPTED: 2}
    rows = table(world)
    assert (rows[two.id].status, rows[two.id].message_id, rows[two.id].reconciled) == (
        "sent", lost_id, "accepted")
    assert {(rows[p.id].status, rows[p.id].batch_key) for p in (one, three)} == {
        ("pending", None)}
    assert ledger.get_send(world.engine, world.send_id).status == "sending"
    assert {status_of(world.engine, p.id) for p in world.lost} == {"active"}
