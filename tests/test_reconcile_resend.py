"""Resend reconciliation: the list's query and the fake's answers against Resend's spec, the
pure parts on their own, ``reconcile`` against the fake provider after a batch went out
through the transport, and what its answers do to the ledger inside and past the window of
the batch's idempotency key."""

import asyncio
import unicodedata
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from newsletter.audience.recipient import Recipient
from newsletter.delivery import ledger
from newsletter.delivery.ledger import queries
from newsletter.delivery.reconcile import Reconciliation
from newsletter.devtools import fake_search_resend
from newsletter.devtools.fake_provider import FakeProvider, Faults, Record
from newsletter.providers import REGISTRY, resend
from newsletter.providers.base import (
    LookupFailed,
    Outcome,
    OutcomeKind,
    UnknownBatch,
    UnknownRow,
    Verdict,
)
from newsletter.providers.resend import (
    DEFAULT_SETTLE,
    LIST_MARGIN,
    MAX_PAGES,
    ResendTransport,
    created_at,
    list_page,
    list_params,
    match_emails,
    rows_by_address,
)
from newsletter.store.tables import deliveries
from tests import ledger_helpers
from tests import reconcile_helpers as helpers
from tests.provider_specs import validate_query, validate_response
from tests.reconcile_helpers import KEY, PEOPLE, fast, unknown, verdicts
from tests.seeding import seed
from tests.transport_fixtures import API_KEY, make_config, make_outgoing, personalized

# Past the key's window (24 hours, the last one not counted on), and within it.
PAST = timedelta(hours=25)
WITHIN = timedelta(hours=2)


@pytest.fixture
def fake():
    with FakeProvider() as server:
        yield server


@pytest.fixture
def config(project, fake):
    return make_config(project, provider="resend", provider_base_url=fake.base_url)


@pytest.fixture
def outgoing(config):
    return make_outgoing(config)


def transport_for(config, **options):
    return fast(ResendTransport, config, **options)


async def ask(config, batch, now, **options):
    return await helpers.ask(transport_for(config, **options), batch, now)


async def send_then_reconcile(config, outgoing, people, *, sent=None, age=timedelta(0),
                              **options):
    """Asked now about a batch claimed ``age`` ago."""
    return await helpers.send_then_reconcile(transport_for(config, **options), outgoing,
                                             people, sent=sent,
                                             sent_at=datetime.now(UTC) - age, after=age)


def older_mail(fake, *, days=2):
    """An email Resend still lists from ``days`` ago, before the batch: its retention reaches
    back past the batch."""
    accept(fake, f"re-{days}-days-old", to="ana@example.com", subject="Your receipt",
           at=datetime.now(UTC) - timedelta(days=days))


def accept(fake, message_id, *, to, subject, at=None):
    record = Record("resend", to, message_id, subject, {}, sender="Five Things <e@x.example>")
    if at is not None:
        record.accepted_at = at.timestamp()
    fake.accept([record])


# -- the pure parts ----------------------------------------------------------------------


def test_the_list_query_is_one_resend_documents():
    for params in (list_params(), list_params(100, after="4ef9a417-02e9-4d39")):
        validate_query("resend", "/emails", "get", params)
    assert list_params(7, after="re-1") == {"limit": "7", "after": "re-1"}
    assert list_params() == {"limit": "100"}, "the largest page Resend gives"


def email(message_id="re-1", *, to=("José Ñúñez <jose@bücher.example>",),
          subject="Five Things | Small Teams’ Long Memories",
          created="2026-11-23T13:00:10.123456+00:00"):
    return {"id": message_id, "to": list(to), "from": "Five Things <e@x.example>",
            "created_at": created, "subject": subject, "bcc": [], "cc": [], "reply_to": [],
            "last_event": "delivered"}


def test_a_page_of_the_spec_shape_is_read():
    payload = {"object": "list", "has_more": True, "data": [email("re-1"), email("re-2")]}
    validate_response("resend", "/emails", "get", 200, payload)
    emails, more = list_page(payload)
    assert [e["id"] for e in emails] == ["re-1", "re-2"] and more is True


@pytest.mark.parametrize("payload", [
    None, [], {"data": []}, {"has_more": False}, {"data": {}, "has_more": False},
    {"data": [{"to": ["a@b.example"]}], "has_more": False},
    {"data": [email()], "has_more": "no"},
])
def test_an_answer_of_another_shape_is_a_failed_lookup(payload):
    with pytest.raises(LookupFailed, match="no list of emails"):
        list_page(payload)


def test_created_at_is_read_as_the_spec_and_the_guide_write_it():
    moment = datetime(2023, 4, 3, 22, 13, 42, 674981, tzinfo=UTC)
    assert created_at(email(created="2023-04-03 22:13:42.674981+00")) == moment
    assert created_at(email(created="2023-04-03T22:13:42.674981+00:00")) == moment
    for bad in ("yesterday", "2023-04-03 22:13:42", None):
        with pytest.raises(LookupFailed, match="created_at"):
            created_at(email(created=bad))


SUBJECT = "Five Things | Small Teams’ Long Memories"
SENT_AT = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


def matched(emails, people=PEOPLE, subject=SUBJECT):
    batch = UnknownBatch(KEY, "2026-W47.abc", subject, SENT_AT,
                         tuple(UnknownRow(p.id, p.email) for p in people))
    found = match_emails(emails, subject=subject, since=SENT_AT - LIST_MARGIN,
                         rows=rows_by_address(batch))
    return {subscriber: hit[0] for subscriber, hit in found.items()}


def test_an_email_is_matched_by_address_in_any_spelling():
    emails = [
        email("re-1", to=["=?utf-8?b?Sm9zw6kgw5HDum7DsWV6?= <JOSE@xn--bcher-kva.example>"]),
        email("re-2", to=["zoe@münchen.example"]),
        email("re-3", to=['"Lévesque, René “Renny”" <rene@café.example>']),
    ]
    assert matched(emails) == {1: "re-1", 2: "re-2", 3: "re-3"}


def test_only_the_editions_subject_since_the_batch_is_taken():
    emails = [
        email("re-other", subject="Five Things | Another week’s memories"),
        email("re-test", subject="[TEST] " + SUBJECT),
        email("re-old", created=(SENT_AT - LIST_MARGIN - timedelta(seconds=1)).isoformat()),
        email("re-stranger", to=["jose@example.com"]),
    ]
    assert matched(emails) == {}
    # Within the margin before the claim (clocks differ) it is the batch's.
    assert matched([email("re-early", created=(SENT_AT - LIST_MARGIN).isoformat())]) == {
        1: "re-early"}


def test_a_subject_back_in_another_unicode_form_or_spacing_is_ours():
    decomposed = unicodedata.normalize("NFD", "Zoë’s “Café” notes")
    assert matched([email(subject=f" {decomposed}  ")], subject="Zoë’s “Café” notes") == {
        1: "re-1"}


def test_the_first_email_listed_for_a_row_is_kept():
    assert matched([email("re-newer"), email("re-older")]) == {1: "re-newer"}


def test_a_row_without_an_address_is_not_looked_for():
    batch = UnknownBatch(KEY, "e", SUBJECT, SENT_AT, (
        UnknownRow(1, ""), UnknownRow(2, "not an address"), UnknownRow(3, "rene@café.example")))
    assert rows_by_address(batch) == {"rene@xn--caf-dma.example": [3]}


def test_settle_is_two_minutes_unless_configured(project):
    default = ResendTransport(make_config(project, provider="resend"))
    assert default.settle == DEFAULT_SETTLE == timedelta(minutes=2)
    configured = make_config(project, provider="resend", reconcile_settle="45")
    assert ResendTransport(configured).settle == timedelta(seconds=45)
    assert REGISTRY["resend"].reconciles == "api"


def test_the_window_ends_where_the_ledger_stops_repeating_under_the_key():
    assert resend.WINDOW_MARGIN == queries.WINDOW_MARGIN
    assert ResendTransport.idempotency_window == timedelta(hours=24)


# -- the fake's list, as Resend documents it ---------------------------------------------------


def listing(fake, token=API_KEY, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{fake.base_url}/emails", params=params, headers=headers)
    return response.status_code, response.json()


def five(fake):
    start = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    for n in range(1, 6):
        accept(fake, f"re-{n}", to=f"Zoë <zoe{n}@münchen.example>", subject=SUBJECT,
               at=start + timedelta(minutes=n))


def ids(body):
    return [e["id"] for e in body["data"]]


def test_the_fakes_emails_are_shaped_as_resends_spec(fake):
    accept(fake, "re-1", to="=?utf-8?q?Jos=C3=A9?= <jose@xn--bcher-kva.example>",
           subject=SUBJECT, at=datetime(2026, 11, 23, 14, 0, tzinfo=UTC))
    status, body = listing(fake)
    validate_response("resend", "/emails", "get", status, body)
    assert (body["object"], body["has_more"]) == ("list", False)
    [item] = body["data"]
    assert item["to"] == ["=?utf-8?q?Jos=C3=A9?= <jose@xn--bcher-kva.example>"]
    assert (item["subject"], item["from"]) == (SUBJECT, "Five Things <e@x.example>")
    assert created_at(item) == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def test_the_fake_pages_newest_first_by_cursor(fake):
    five(fake)
    status, first = listing(fake, limit="2")
    assert status == 200 and ids(first) == ["re-5", "re-4"] and first["has_more"]
    _, second = listing(fake, limit="2", after="re-4")
    assert ids(second) == ["re-3", "re-2"] and second["has_more"]
    _, last = listing(fake, limit="2", after="re-2")
    assert ids(last) == ["re-1"] and not last["has_more"]
    _, back = listing(fake, limit="2", before="re-2")
    assert ids(back) == ["re-4", "re-3"] and back["has_more"], "re-5 is newer still"


def test_the_fake_gives_twenty_unless_asked(fake):
    for n in range(25):
        accept(fake, f"re-{n}", to="ana@example.com", subject=SUBJECT)
    _, body = listing(fake)
    assert len(body["data"]) == 20 and body["has_more"]


def test_the_fake_shows_only_what_is_searchable_by_now(fake):
    fake.faults = Faults(index_delay=3600)
    accept(fake, "re-1", to="ana@example.com", subject=SUBJECT)
    assert ids(listing(fake)[1]) == []


@pytest.mark.parametrize(("params", "says"), [
    ({"limit": "0"}, "between 1 and 100"),
    ({"limit": "101"}, "between 1 and 100"),
    ({"limit": "ten"}, "between 1 and 100"),
    ({"after": "re-1", "before": "re-2"}, "not both"),
    ({"after": "re-gone"}, "not the id of an email"),
])
def test_the_fake_refuses_what_resend_refuses(fake, params, says):
    five(fake)
    status, body = listing(fake, **params)
    assert (status, body["statusCode"], body["name"]) == (422, 422, "validation_error")
    assert says in body["message"]


def test_the_fake_wants_the_api_key(fake):
    fake.faults = Faults(bad_token="re_revoked")
    assert listing(fake, token="")[1]["name"] == "missing_api_key"
    status, body = listing(fake, token="re_revoked")
    assert (status, body["name"]) == (401, "invalid_api_key")


def test_the_fake_list_module_answers_only_its_path():
    assert fake_search_resend.handles("/emails")
    assert not fake_search_resend.handles("/emails/batch")
    assert not fake_search_resend.handles("/emails/re-1")


# -- reconcile against the fake -------------------------------------------------------------


@pytest.mark.parametrize("age", [timedelta(0), WITHIN, PAST])
async def test_every_accepted_message_is_found_with_its_id(config, outgoing, fake, age):
    findings, outcomes = await send_then_reconcile(config, outgoing, PEOPLE, age=age)
    assert [f.subscriber_id for f in findings] == [1, 2, 3]
    assert all(f.verdict is Verdict.ACCEPTED for f in findings)
    assert [f.message_id for f in findings] == [o.message_id for o in outcomes]
    assert findings[2].raw["to"] == [personalized(outgoing, PEOPLE)[2].to]
    assert "Resend's sent emails" in findings[0].reason
    assert fake.searches == 1, "one page holds a whole batch"


async def test_within_the_window_not_found_is_left_to_a_repeat_under_the_key(
        config, outgoing, fake):
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, sent=[], age=WITHIN)
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], Verdict.UNDECIDED)
    assert "only a repeat under it is safe" in findings[0].reason


async def test_messages_not_listed_yet_are_asked_about_again_once_settled(
        config, outgoing, fake):
    fake.faults = Faults(index_delay=3600)  # far longer than the settle
    findings, outcomes = await send_then_reconcile(config, outgoing, PEOPLE)
    assert all(o.kind == "sent" for o in outcomes) and len(fake.records) == 3
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], Verdict.UNDECIDED)
    assert all("asked again after" in f.reason for f in findings)


@pytest.mark.parametrize(("older", "verdict"), [(True, Verdict.NOT_ACCEPTED),
                                                (False, Verdict.UNDECIDED)])
async def test_past_the_window_not_found_counts_only_while_older_mail_is_listed(
        config, outgoing, fake, older, verdict):
    if older:
        older_mail(fake)
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, sent=[], age=PAST)
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], verdict)
    if not older:
        assert "retention" in findings[0].reason


async def test_within_the_first_day_the_list_keeps_everything(config, outgoing, fake):
    # Every plan keeps a day of emails: an empty list 23.5 hours on is proof enough.
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, sent=[],
                                            age=timedelta(hours=23, minutes=30))
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], Verdict.NOT_ACCEPTED)
    assert fake.searches == 1


async def test_only_the_rows_found_are_accepted(config, outgoing, fake):
    older_mail(fake)
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, sent=PEOPLE[:2], age=PAST)
    assert verdicts(findings) == {1: Verdict.ACCEPTED, 2: Verdict.ACCEPTED,
                                  3: Verdict.NOT_ACCEPTED}


async def test_another_editions_emails_to_the_same_address_are_not_taken(
        config, outgoing, fake):
    older_mail(fake)
    week_ago = datetime.now(UTC) - timedelta(days=7)
    rene = "René <rene@xn--caf-dma.example>"
    accept(fake, "re-last-week", to=rene, subject=outgoing.subject, at=week_ago)
    accept(fake, "re-welcome", to=rene, subject="Welcome to Five Things")
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, sent=PEOPLE[:2], age=PAST)
    assert verdicts(findings) == {1: Verdict.ACCEPTED, 2: Verdict.ACCEPTED,
                                  3: Verdict.NOT_ACCEPTED}


async def test_results_past_one_page_are_paged_through(config, outgoing, fake):
    people = PEOPLE + [Recipient(id=i, email=f"leser{i}@straße.example", name=f"Léa {i}")
                       for i in range(4, 8)]
    findings, outcomes = await send_then_reconcile(config, outgoing, people, list_limit=3)
    assert all(f.verdict is Verdict.ACCEPTED for f in findings)
    assert [f.message_id for f in findings] == [o.message_id for o in outcomes]
    assert fake.searches == 3, "7 emails in pages of 3"


async def test_the_paging_stops_at_the_first_email_older_than_the_batch(
        config, outgoing, fake):
    for n in range(4):
        older_mail(fake, days=2 + n)
    for n in range(4):
        accept(fake, f"re-newer-{n}", to="ana@example.com", subject="Your receipt")
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, sent=[], age=PAST,
                                            list_limit=2)
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], Verdict.NOT_ACCEPTED)
    assert fake.searches == 3, "two pages of newer mail, then one reaching back past it"


async def test_a_failing_list_is_a_failed_lookup_after_the_retries(config, outgoing, fake):
    fake.faults = Faults(search_script="500,500,500")
    with pytest.raises(LookupFailed) as err:
        await send_then_reconcile(config, outgoing, PEOPLE, age=PAST)
    assert err.value.status == 500 and fake.searches == 3
    assert "list failed" in str(err.value) and API_KEY not in str(err.value)


async def test_a_list_that_recovers_within_the_retries_answers(config, outgoing, fake):
    fake.faults = Faults(search_script="500,ok")
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, age=PAST)
    assert all(f.verdict is Verdict.ACCEPTED for f in findings) and fake.searches == 2


async def test_a_refused_key_is_a_failed_lookup_without_the_key(config, outgoing, fake):
    fake.faults = Faults(bad_token=API_KEY)
    with pytest.raises(LookupFailed) as err:
        await ask(config, unknown(outgoing, PEOPLE), datetime.now(UTC))
    assert err.value.status == 401 and API_KEY not in str(err.value)
    assert "invalid_api_key" in str(err.value)


async def test_rows_without_an_address_stay_undecided_unasked(config, outgoing, fake):
    batch = UnknownBatch(KEY, outgoing.edition_key, outgoing.subject,
                         datetime.now(UTC) - PAST, (UnknownRow(1, ""),))
    findings = await ask(config, batch, datetime.now(UTC))
    assert verdicts(findings) == {1: Verdict.UNDECIDED}
    assert "by address only" in findings[0].reason and fake.searches == 0


async def test_an_erased_row_beside_others_is_not_taken_for_unsent(config, outgoing, fake):
    older_mail(fake)
    people = [*PEOPLE[:2], Recipient(id=3, email="", name="")]
    findings, _ = await send_then_reconcile(config, outgoing, people, sent=[], age=PAST)
    assert verdicts(findings) == {1: Verdict.NOT_ACCEPTED, 2: Verdict.NOT_ACCEPTED,
                                  3: Verdict.UNDECIDED}


def mocked(config, handler):
    return transport_for(config, transport=httpx.MockTransport(handler))


async def test_a_list_that_never_ends_is_a_failed_lookup(config, outgoing):
    batch = unknown(outgoing, PEOPLE, sent_at=SENT_AT)
    queries_sent = []

    def handler(request):
        queries_sent.append(dict(request.url.params))
        n = len(queries_sent)
        newer = (SENT_AT + timedelta(hours=1, seconds=-n)).isoformat()  # never older
        return httpx.Response(200, json={"object": "list", "has_more": True, "data": [
            email(f"re-{n}", to=["ana@example.com"], created=newer)]})

    transport = mocked(config, handler)
    try:
        with pytest.raises(LookupFailed, match=f"more than {MAX_PAGES:,} pages"):
            await transport.reconcile(batch, now=SENT_AT + PAST)
    finally:
        await transport.aclose()
    assert len(queries_sent) == MAX_PAGES
    assert queries_sent[0] == {"limit": "100"} and queries_sent[1]["after"] == "re-1"
    for params in queries_sent[:3]:
        validate_query("resend", "/emails", "get", params)


@pytest.mark.parametrize(("answer", "says"), [
    (httpx.Response(200, text="<html>maintenance</html>"), "not JSON"),
    (httpx.Response(200, json={"object": "list", "has_more": True, "data": []}),
     "shows none to page after"),
    (httpx.Response(422, json={"statusCode": 422, "name": "validation_error",
                               "message": "bad"}), "list refused"),
])
async def test_an_answer_that_cannot_be_read_is_a_failed_lookup(config, outgoing, answer, says):
    transport = mocked(config, lambda request: answer)
    try:
        with pytest.raises(LookupFailed, match=says):
            await transport.reconcile(unknown(outgoing, PEOPLE), now=datetime.now(UTC))
    finally:
        await transport.aclose()


# -- what the answers do to the ledger ------------------------------------------------------


def unknown_batch_in_ledger(database_url, outgoing):
    """A Resend send whose one batch of PEOPLE's addresses came back unknown; its key."""
    engine = seed(database_url, [p.email for p in PEOPLE])
    send, _ = ledger.open_send(engine, "2026-W47", "h1", outgoing.subject, "resend",
                               idempotent=True)
    worker = ledger_helpers.register_worker(engine, send.id)
    claim = ledger.claim(engine, send.id, worker, 10)
    ledger.record(engine, send.id, worker, claim,
                  [Outcome(r.id, OutcomeKind.UNKNOWN, reason="timed out")
                   for r in claim.recipients], max_attempts=3, retry_delay=0,
                  repeats=ledger.Repeats(3, ResendTransport.idempotency_window))
    ledger_helpers.unregister_worker(engine, worker)
    return engine, send, claim.batch_key


def rows(engine, send_id):
    with engine.connect() as conn:
        return {r.subscriber_id: r for r in conn.execute(
            sa.select(deliveries).where(deliveries.c.send_id == send_id))}


def reconcile_all(config, engine, send, outgoing, age):
    """``send --reconcile``: every unknown row asked about (those a repeat would take too),
    ``age`` after the batch was claimed."""
    async def run():
        transport = transport_for(config)
        try:
            start = datetime.now(UTC)
            await Reconciliation(transport, engine, send.id, outgoing.edition_key,
                                 outgoing.subject, clock=lambda: start + age).run_pass()
        finally:
            await transport.aclose()

    asyncio.run(run())
    return rows(engine, send.id)


def test_within_the_window_an_unlisted_batch_keeps_its_key_for_the_repeat(
        database_url, config, outgoing, fake):
    engine, send, key = unknown_batch_in_ledger(database_url, outgoing)
    after = reconcile_all(config, engine, send, outgoing, DEFAULT_SETTLE + timedelta(seconds=5))
    assert {r.status for r in after.values()} == {"unknown"}
    assert {r.batch_key for r in after.values()} == {key}, "a new key would send it twice"
    worker = ledger_helpers.register_worker(engine, send.id)
    repeat = ledger.claim_unknown(engine, send.id, worker, max_attempts=3,
                                  window=ResendTransport.idempotency_window)
    assert repeat is not None and repeat.repeat and repeat.batch_key == key
    assert sorted(r.id for r in repeat.recipients) == [1, 2, 3]


def test_past_the_window_an_unlisted_batch_goes_out_again_and_a_listed_one_is_sent(
        database_url, config, outgoing, fake):
    engine, send, key = unknown_batch_in_ledger(database_url, outgoing)
    older_mail(fake)
    accept(fake, "re-jose", to=personalized(outgoing, PEOPLE)[0].to, subject=outgoing.subject)
    after = reconcile_all(config, engine, send, outgoing, PAST)
    assert {i: r.status for i, r in after.items()} == {1: "sent", 2: "pending", 3: "pending"}
    assert after[1].message_id == "re-jose" and after[1].reconciled == "accepted"
    assert after[2].batch_key is None and after[2].reconciled == "not_accepted"
