"""Mailgun reconciliation: the events query and the fake's answers against Mailgun's spec
(``GET /v3/{domain_name}/events``), the pure parts on their own, and ``reconcile`` against
the fake provider after a batch went out through the transport."""

import base64
import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from newsletter.audience.recipient import Recipient
from newsletter.devtools import fake_search_mailgun
from newsletter.devtools.fake_provider import FakeProvider, Faults, Record
from newsletter.providers import REGISTRY
from newsletter.providers.base import LookupFailed, UnknownBatch, UnknownRow, Verdict
from newsletter.providers.mailgun import (
    DEFAULT_SETTLE,
    EVENTS_LIMIT,
    RETENTION,
    MailgunTransport,
    build_form,
    events_params,
    keep,
    multipart,
    parse_events,
    recipient_address,
    same_origin,
)
from tests import reconcile_helpers as helpers
from tests.provider_specs import load_spec, validate_query, validate_response
from tests.reconcile_helpers import KEY, OTHER_KEY, PEOPLE, fast, unknown, verdicts
from tests.transport_fixtures import API_KEY, make_config, make_outgoing, personalized

DOMAIN = "mg.fivethings.example"
SPEC_PATH = "/v3/{domain_name}/events"
EVENTS = f"/v3/{DOMAIN}/events"
# The edition key of the test project's week (its content hash follows the templates): set
# from the ``outgoing`` fixture for every test, see ``edition_of_the_week``.
EDITION = ""
# The send takes milliseconds; asking a minute after the claim keeps the searched window's
# end past every message of it without reaching the 30-minute settle.
SOON = timedelta(minutes=1)


def readers(n, start=1):
    return [Recipient(id=i, email=f"leser{i}@straße.example", name=f"Léa “{i}” Müller")
            for i in range(start, start + n)]


@pytest.fixture
def fake():
    with FakeProvider() as server:
        yield server


@pytest.fixture
def config(project, fake):
    return make_config(project, provider="mailgun", mailgun_domain=DOMAIN,
                       provider_base_url=fake.base_url)


@pytest.fixture
def outgoing(config):
    return make_outgoing(config)


class Recording(httpx.AsyncBaseTransport):
    """The real connection to the fake, remembering the URL of every request made."""

    def __init__(self):
        self.urls: list[httpx.URL] = []
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request):
        self.urls.append(request.url)
        return await self._inner.handle_async_request(request)

    async def aclose(self):
        await self._inner.aclose()

    def first_pages(self):
        """The query of each search's first page (later pages are Mailgun's own URLs)."""
        return [dict(u.params) for u in self.urls if u.path == EVENTS]


def transport_for(config, **options):
    return fast(MailgunTransport, config, **options)


async def send_then_reconcile(config, outgoing, people, *, sent=None, after=SOON, rows=None,
                              **options):
    return await helpers.send_then_reconcile(transport_for(config, **options), outgoing,
                                             people, sent=sent, after=after, rows=rows)


async def reconcile_only(config, batch, *, now=None, **options):
    return await helpers.ask(transport_for(config, **options), batch, now)


@pytest.fixture(autouse=True)
def edition_of_the_week(outgoing, monkeypatch):
    monkeypatch.setitem(globals(), "EDITION", outgoing.edition_key)


def record(subscriber_id, *, edition=None, batch=KEY, message_id=None, to=None, at=None):
    """A message the fake accepted, as ``records_from_form`` records a Mailgun send."""
    edition = edition or EDITION
    made = Record("mailgun", to or f"Zoë <zoe{subscriber_id}@xn--mnchen-3ya.example>",
                  message_id or f"<m-{subscriber_id}@{DOMAIN}>", "Wöchentlich “Fünf”",
                  {"edition": edition, "subscriber_id": str(subscriber_id), "batch": batch},
                  sender="Five Things <editors@fivethings.example.com>")
    if at is not None:
        made.accepted_at = at.timestamp()
    return made


def event(subscriber_id, **kw):
    """An accepted event, shaped as the fake (and Mailgun) shows one."""
    return fake_search_mailgun.event(record(subscriber_id, **kw))


def page(*items, next_url="https://api.mailgun.net/v3/mg.fivethings.example/events/W3siY"):
    return {"items": list(items), "paging": {"next": next_url, "previous": next_url}}


# -- the pure parts ----------------------------------------------------------------------


def test_the_form_names_the_edition_and_the_batch_for_the_events(outgoing):
    form = build_form(outgoing, personalized(outgoing, PEOPLE), batch_key=KEY)
    variables = [(name, value) for name, value in form if name.startswith("v:")]
    assert sorted(name for name, _ in variables) == ["v:batch", "v:edition", "v:subscriber_id"]
    fields = dict(variables)
    assert (fields["v:edition"], fields["v:batch"]) == (outgoing.edition_key, KEY)
    assert fields["v:subscriber_id"].startswith("%recipient."), "filled in per recipient"


def test_what_mailgun_records_of_the_form_names_each_subscriber(outgoing):
    # The fake reads the form as Mailgun does: UTF-8 fields, %recipient.KEY% filled per "to".
    form = build_form(outgoing, personalized(outgoing, PEOPLE), batch_key=KEY)
    request = httpx.Request("POST", f"https://api.mailgun.net/v3/{DOMAIN}/messages",
                            files=multipart(form))
    records = fake_search_mailgun.records_from_form(request.headers["content-type"],
                                                    request.read(), "<m-1@fake>")
    assert [r.metadata for r in records] == [
        {"edition": outgoing.edition_key, "subscriber_id": str(p.id), "batch": KEY}
        for p in PEOPLE]
    assert [r.subject for r in records] == [outgoing.subject] * 3  # “Small Teams’ …”
    assert records[0].sender == outgoing.sender.header
    assert "jose@xn--bcher-kva.example" in records[0].to


def test_the_events_query_is_one_mailgun_documents(outgoing):
    batch = unknown(outgoing, PEOPLE,
                    sent_at=datetime(2026, 11, 23, 13, 0, 5, 250_000, tzinfo=UTC))
    now = batch.sent_at + timedelta(minutes=3)
    params = events_params(batch, now, recipient_address("jose@bücher.example"))
    validate_query("mailgun", SPEC_PATH, "get", params)
    sent = batch.sent_at.timestamp()
    assert params == {
        "event": "accepted",
        # epoch seconds, a minute before the claim (clocks differ) to now, rounded outwards
        "begin": str(math.floor(sent) - 60), "end": str(math.ceil(now.timestamp())),
        "ascending": "yes", "limit": "300",
        "recipient": "jose@xn--bcher-kva.example",
    }
    later = events_params(batch, batch.sent_at + timedelta(days=1))
    assert "recipient" not in later, "the window scan asks for every recipient"
    assert int(later["end"]) == math.ceil(sent + 3600), "the window ends an hour after"


def test_the_page_size_is_the_specs_maximum_and_no_more(project):
    spec = load_spec("mailgun")
    [limit] = [p for p in spec["paths"][SPEC_PATH]["get"]["parameters"] if p["name"] == "limit"]
    assert EVENTS_LIMIT == limit["schema"]["maximum"] == 300
    with pytest.raises(AssertionError, match="301 > 300"):
        validate_query("mailgun", SPEC_PATH, "get", {"limit": "301"})
    config = make_config(project, provider="mailgun", mailgun_domain=DOMAIN)
    with pytest.raises(ValueError, match="page_limit"):
        MailgunTransport(config, page_limit=301)


def test_parse_events_takes_only_our_editions_accepted_events_of_the_batchs_rows(outgoing):
    as_number = event(2, message_id="<m-2@mg>")
    as_number["user-variables"]["subscriber_id"] = 2  # Mailgun may give a number back
    flag = event(1, message_id="<m-flag@mg>")
    flag["user-variables"]["subscriber_id"] = True  # not the number 1
    delivered = {**event(3), "event": "delivered"}
    payload = page(flag, event(1, message_id="m-1@mg"), as_number,
                   event(3, edition="2026-W46.0000aaaa0000"), delivered, event(9))
    validate_response("mailgun", SPEC_PATH, "get", 200, payload)
    found, next_url = parse_events(payload, unknown(outgoing, PEOPLE))
    assert sorted(found) == [1, 2]
    assert found[1][0] == "<m-1@mg>", "in the form the messages API answered it"
    assert found[2][0] == "<m-2@mg>"
    assert found[1][1]["recipient"] == "zoe1@xn--mnchen-3ya.example", "the event is kept"
    assert next_url == payload["paging"]["next"]


def test_an_event_without_readable_variables_or_message_id(outgoing):
    garbled = event(1)
    # Mailgun's own words when it could not store them (mailgun/mailgun-go#211)
    garbled["user-variables"] = "Could not load user-variables. They were either truncated"
    bare = event(2)
    del bare["message"]["headers"]["message-id"]
    found, _ = parse_events(page(garbled, bare), unknown(outgoing, PEOPLE))
    assert list(found) == [2]
    assert found[2][0] == "", "accepted all the same, without an id"


def test_an_empty_page_ends_the_scan_even_without_paging(outgoing):
    assert parse_events({"items": []}, unknown(outgoing, PEOPLE)) == ({}, None)


def test_a_page_of_events_without_a_next_url_is_a_failed_lookup(outgoing):
    payload = {"items": [event(1)], "paging": {"previous": "https://api.mailgun.net/x"}}
    with pytest.raises(LookupFailed, match="without paging.next"):
        parse_events(payload, unknown(outgoing, PEOPLE))


@pytest.mark.parametrize("payload", [None, [], {"paging": {}}, {"items": {"0": {}}}, "Forbidden"])
def test_an_answer_of_another_shape_is_a_failed_lookup(outgoing, payload):
    with pytest.raises(LookupFailed, match="no list of items"):
        parse_events(payload, unknown(outgoing, PEOPLE))


def test_keep_prefers_an_event_of_our_very_batch():
    earlier, ours, again = (("<a>", event(1, batch=OTHER_KEY)), ("<b>", event(1)),
                            ("<c>", event(1, batch=OTHER_KEY)))
    found: dict = {}
    keep(found, 1, earlier, KEY)
    assert found[1][0] == "<a>", "another batch's event of the edition still counts"
    keep(found, 1, ours, KEY)
    assert found[1][0] == "<b>", "our batch's event replaces it"
    keep(found, 1, again, KEY)
    keep(found, 1, ("<d>", event(1)), KEY)
    assert found[1][0] == "<b>", "and is never replaced"


@pytest.mark.parametrize(("url", "same"), [
    ("https://api.mailgun.net/v3/mg/events/W3siY", True),
    ("https://api.mailgun.net:443/v3/mg/events/W3siY", True),
    ("https://api.eu.mailgun.net/v3/mg/events/W3siY", False),
    ("http://api.mailgun.net/v3/mg/events/W3siY", False),
    ("https://api.mailgun.net:8443/v3/mg/events/W3siY", False),
    ("https://api.mailgun.net.evil.example/v3/mg/events", False),
    ("http://[::1", False),
])
def test_same_origin(url, same):
    assert same_origin(url, "https://api.mailgun.net") is same


@pytest.mark.parametrize(("email", "address"), [
    ("jose@bücher.example", "jose@xn--bcher-kva.example"),
    ("Leser@Straße.example", "Leser@xn--strae-oqa.example"),
    ("", None),
    ("josé@bücher.example", None),  # not an address a message could carry
])
def test_recipient_address(email, address):
    assert recipient_address(email) == address


def test_settle_is_half_an_hour_unless_configured(project):
    default = make_config(project, provider="mailgun", mailgun_domain=DOMAIN)
    assert MailgunTransport(default).settle == timedelta(minutes=30) == DEFAULT_SETTLE
    configured = make_config(project, provider="mailgun", mailgun_domain=DOMAIN,
                             reconcile_settle="90")
    assert MailgunTransport(configured).settle == timedelta(seconds=90)
    assert REGISTRY["mailgun"].reconciles == "api"


# -- the fake's events search, as Mailgun documents it -------------------------------------


def basic(user="api", key=API_KEY):
    return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


def search(fake, *, url=None, auth=None, **params):
    headers = {"Authorization": auth or basic()}
    response = httpx.get(url or f"{fake.base_url}{EVENTS}", params=params, headers=headers)
    return response.status_code, response.json()


def ids(body):
    return [item["message"]["headers"]["message-id"] for item in body["items"]]


def test_the_fakes_events_are_shaped_as_mailguns_spec(fake):
    fake.accept([record(1, to="=?utf-8?q?Jos=C3=A9_=C3=91=C3=BA=C3=B1ez?= "
                              "<jose@xn--bcher-kva.example>")])
    status, body = search(fake, ascending="yes", limit="10")
    validate_response("mailgun", SPEC_PATH, "get", status, body)
    [item] = body["items"]
    # Each field is one the spec's EventResponse lists, or ``recipient``, which its
    # examples (and Mailgun's accepted event sample) carry.
    schemas = load_spec("mailgun")["components"]["schemas"]
    assert set(item) <= set(schemas["EventResponse"]["properties"]) | {"recipient"}
    assert set(item["message"]) <= set(schemas["MessageObject"]["properties"])
    assert (item["event"], item["recipient"]) == ("accepted", "jose@xn--bcher-kva.example")
    assert item["message"]["headers"]["message-id"] == f"m-1@{DOMAIN}", "without <>"
    assert item["message"]["headers"]["subject"] == "Wöchentlich “Fünf”"
    assert item["user-variables"] == {"edition": EDITION, "subscriber_id": "1", "batch": KEY}
    assert item["recipient-domain"] == "xn--bcher-kva.example"
    assert set(body["paging"]) >= {"next", "previous"}


@pytest.mark.parametrize(("params", "says"), [
    ({"limit": "301"}, "from 1 to 300"),
    ({"limit": "0"}, "from 1 to 300"),
    ({"ascending": "maybe"}, "yes or no"),
    ({"begin": "next tuesday"}, "not a valid timestamp"),
])
def test_the_fake_refuses_what_mailgun_refuses(fake, params, says):
    status, body = search(fake, **params)
    assert status == 400 and says in body["message"]


def test_the_fake_refuses_a_page_token_it_did_not_make(fake):
    status, body = search(fake, url=f"{fake.base_url}{EVENTS}/bm90LWEtdG9rZW4")
    assert (status, body) == (400, {"message": "Invalid page token"})


@pytest.mark.parametrize("auth", ["", f"Bearer {API_KEY}", basic(user="apí"), basic(key=""),
                                  "Basic not-base64!", basic(key="mg-revoked-key")])
def test_the_fake_wants_basic_auth_as_api_and_a_live_key(fake, auth):
    fake.faults = Faults(bad_token="mg-revoked-key")
    response = httpx.get(f"{fake.base_url}{EVENTS}", params={"limit": "1"},
                         headers={"Authorization": auth} if auth else {})
    assert response.status_code == 401
    assert search(fake, limit="1")[0] == 200


def a_while_ago():
    """A moment the fake's search already shows (it hides what it accepts "later")."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def test_the_fake_filters_as_mailgun_documents(fake):
    monday = a_while_ago()
    fake.accept([record(1, at=monday, to="jose@xn--bcher-kva.example"),
                 record(2, at=monday + timedelta(minutes=10)),
                 record(3, at=monday + timedelta(minutes=20))])
    begin, end = int(monday.timestamp()), int((monday + timedelta(minutes=10)).timestamp())

    def found(**params):
        status, body = search(fake, limit="10", **params)
        assert status == 200
        return [i.split("@")[0] for i in ids(body)]

    assert found(ascending="yes") == ["m-1", "m-2", "m-3"]
    assert found(ascending="no") == ["m-3", "m-2", "m-1"]
    assert found(begin=str(begin), end=str(end)) == ["m-1", "m-2"], "both ends inclusive"
    assert found(begin=str(end), end=str(begin)) == ["m-2", "m-1"], "end first: descending"
    rfc2822 = format_datetime(monday + timedelta(minutes=5))
    assert found(begin=rfc2822, ascending="yes") == ["m-2", "m-3"]
    assert found(end=str(end + 1)) == ["m-3"], "only an end: from now back to it"
    assert found(ascending="yes", event="accepted") == ["m-1", "m-2", "m-3"]
    assert found(ascending="yes", event="delivered OR accepted") == ["m-1", "m-2", "m-3"]
    assert found(ascending="yes", event="delivered") == []
    assert found(ascending="yes", recipient="JOSE@xn--bcher-kva.example") == ["m-1"]
    assert found(ascending="yes", **{"message-id": f"<m-2@{DOMAIN}>"}) == ["m-2"]


def test_the_fake_pages_with_next_until_an_empty_page(fake):
    start = a_while_ago()
    fake.accept([record(n, at=start + timedelta(seconds=n)) for n in range(1, 6)])
    status, body = search(fake, ascending="yes", limit="2")
    seen = []
    while body["items"]:
        assert status == 200 and body["paging"]["next"].startswith(f"{fake.base_url}{EVENTS}/")
        seen.append(ids(body))
        status, body = search(fake, url=body["paging"]["next"])
    assert [[i.split("@")[0] for i in p] for p in seen] == [["m-1", "m-2"], ["m-3", "m-4"],
                                                             ["m-5"]]
    # The empty page's next URL keeps its place: asked again, it shows what came since.
    fake.accept([record(6, at=start + timedelta(seconds=6))])
    _, more = search(fake, url=body["paging"]["next"])
    assert [i.split("@")[0] for i in ids(more)] == ["m-6"]


def test_the_fake_shows_a_message_only_after_its_index_delay(fake):
    fake.faults = Faults(index_delay=3600)
    fake.accept([record(1)])
    assert search(fake, ascending="yes")[1]["items"] == []


def test_the_fake_search_module_answers_only_its_paths():
    assert fake_search_mailgun.handles(EVENTS)
    assert fake_search_mailgun.handles(f"{EVENTS}/W3siYWZ0ZXIiOlsx")
    assert not fake_search_mailgun.handles(f"/v3/{DOMAIN}/messages")
    assert not fake_search_mailgun.handles("/v3/domains/mg/events")


# -- reconcile against the fake -------------------------------------------------------------


async def test_every_accepted_message_is_found_with_the_id_the_send_recorded(config, outgoing,
                                                                             fake):
    wire = Recording()
    findings, outcomes = await send_then_reconcile(config, outgoing, PEOPLE, transport=wire)
    assert [f.subscriber_id for f in findings] == [1, 2, 3]
    assert all(f.verdict is Verdict.ACCEPTED for f in findings)
    assert [f.message_id for f in findings] == [o.message_id for o in outcomes]
    assert findings[0].raw["recipient"] == "jose@xn--bcher-kva.example"
    assert findings[2].raw["message"]["headers"]["subject"] == outgoing.subject
    assert "each recipient" in findings[0].reason
    queries = wire.first_pages()
    for query in queries:
        validate_query("mailgun", SPEC_PATH, "get", query)
    assert [q["recipient"] for q in queries] == [
        "jose@xn--bcher-kva.example", "zoe@xn--mnchen-3ya.example", "rene@xn--caf-dma.example"]
    assert fake.searches == 3, "each recipient's first page holds its message: no more asked"


async def test_a_batch_never_sent_is_not_accepted_once_settled(config, outgoing, fake):
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, sent=[],
                                            after=DEFAULT_SETTLE)
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], Verdict.NOT_ACCEPTED)
    assert fake.searches == 3, "an empty first page ends each recipient's search"


async def test_a_batch_never_sent_is_undecided_before_it_settles(config, outgoing, fake):
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, sent=[],
                                            after=DEFAULT_SETTLE - timedelta(seconds=1))
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], Verdict.UNDECIDED)
    assert all("asked again after" in f.reason for f in findings)


async def test_only_the_rows_found_are_accepted(config, outgoing, fake):
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, sent=PEOPLE[:2],
                                            after=DEFAULT_SETTLE)
    assert verdicts(findings) == {1: Verdict.ACCEPTED, 2: Verdict.ACCEPTED,
                                  3: Verdict.NOT_ACCEPTED}


async def test_events_not_indexed_yet_leave_the_batch_undecided(config, outgoing, fake):
    fake.faults = Faults(index_delay=600)  # Mailgun may index late; within the settle
    findings, outcomes = await send_then_reconcile(config, outgoing, PEOPLE)
    assert all(o.kind == "sent" for o in outcomes) and len(fake.records) == 3
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], Verdict.UNDECIDED)


async def test_another_editions_event_for_the_same_recipient_is_not_taken(config, outgoing,
                                                                          fake):
    fake.accept([record(3, edition="2026-W46.0000aaaa0000", to="René <rene@xn--caf-dma.example>")])
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, sent=PEOPLE[:2],
                                            after=DEFAULT_SETTLE)
    assert verdicts(findings) == {1: Verdict.ACCEPTED, 2: Verdict.ACCEPTED,
                                  3: Verdict.NOT_ACCEPTED}


async def test_an_earlier_attempts_event_does_not_end_the_search_for_ours(config, outgoing,
                                                                          fake):
    # Subscriber 1's edition went out once before under another batch key (indexed late):
    # that counts, but our batch's own event is read on for, and its id kept.
    fake.accept([record(1, edition=outgoing.edition_key, batch=OTHER_KEY,
                        to="jose@xn--bcher-kva.example", message_id="<earlier@fake>")])
    findings, outcomes = await send_then_reconcile(config, outgoing, PEOPLE, page_limit=1)
    assert all(f.verdict is Verdict.ACCEPTED for f in findings)
    assert [f.message_id for f in findings] == [o.message_id for o in outcomes]
    assert fake.searches == 4, "two pages for José, one for each of the others"


async def test_an_erased_row_is_found_by_its_subscriber_id_in_a_window_scan(config, outgoing,
                                                                            fake):
    wire = Recording()
    rows = (UnknownRow(1, PEOPLE[0].email), UnknownRow(2, PEOPLE[1].email), UnknownRow(3, ""))
    findings, outcomes = await send_then_reconcile(config, outgoing, PEOPLE, rows=rows,
                                                   transport=wire)
    assert all(f.verdict is Verdict.ACCEPTED for f in findings)
    assert [f.message_id for f in findings] == [o.message_id for o in outcomes]
    [query] = wire.first_pages()
    assert "recipient" not in query, "a row without an address cannot be asked by it"


async def test_a_failing_search_is_a_failed_lookup_after_the_retries(config, outgoing, fake):
    fake.faults = Faults(search_script="500,500,500")  # every try of José's first page
    with pytest.raises(LookupFailed) as err:
        await send_then_reconcile(config, outgoing, PEOPLE)
    assert err.value.status == 500 and fake.searches == 3, "three tries, then no more asked"
    assert "events search failed" in str(err.value) and API_KEY not in str(err.value)


async def test_a_search_that_recovers_within_the_retries_answers(config, outgoing, fake):
    fake.faults = Faults(search_script="500,500,ok")
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE)
    assert all(f.verdict is Verdict.ACCEPTED for f in findings)
    assert fake.searches == 5, "José's page on the third try, then one each for the others"


async def test_a_refused_key_is_a_failed_lookup_without_the_key(config, outgoing, fake):
    fake.faults = Faults(bad_token=API_KEY)
    with pytest.raises(LookupFailed) as err:
        await reconcile_only(config, unknown(outgoing, PEOPLE))
    assert err.value.status == 401 and fake.searches == 1
    assert API_KEY not in str(err.value)


async def test_a_refusal_that_repeats_the_key_does_not_show_it(config, outgoing):
    echo = httpx.MockTransport(lambda request: httpx.Response(
        401, text=f"Forbidden: key {API_KEY} is not valid for {DOMAIN}"))
    with pytest.raises(LookupFailed) as err:
        await reconcile_only(config, unknown(outgoing, PEOPLE), transport=echo)
    assert err.value.status == 401 and "Forbidden" in str(err.value)
    assert API_KEY not in str(err.value) and API_KEY not in err.value.body


async def test_of_many_rows_three_recipients_are_asked_and_answer_for_the_batch(
        config, outgoing, fake):
    people = PEOPLE + readers(22, start=4)  # 25 rows: more than are asked one at a time
    wire = Recording()
    findings, outcomes = await send_then_reconcile(config, outgoing, people, page_limit=10,
                                                   transport=wire)
    assert all(f.verdict is Verdict.ACCEPTED for f in findings)
    assert [f.message_id for f in findings] == [o.message_id for o in outcomes], \
        "Mailgun's one id for the request, for every row"
    assert findings[0].reason == "found in Mailgun's accepted events of the batch"
    queries = wire.first_pages()
    for query in queries:
        validate_query("mailgun", SPEC_PATH, "get", query)
    assert {q["recipient"] for q in queries} == {
        recipient_address(people[i].email) for i in (0, 12, 24)}
    assert fake.searches == 3, "three recipients, one page each, whatever the send's size"


async def test_of_many_rows_none_found_once_settled_means_the_request_was_not_taken(
        config, outgoing, fake):
    people = PEOPLE + readers(22, start=4)
    transport = transport_for(config)
    try:
        # Another batch of the send went out at the same time: its events are not ours.
        await transport.send_batch(outgoing, personalized(outgoing, readers(30, start=100)),
                                   batch_key=OTHER_KEY)
        batch = unknown(outgoing, people)
        early = await transport.reconcile(batch, now=batch.sent_at + SOON)
        settled = await transport.reconcile(batch, now=batch.sent_at + DEFAULT_SETTLE)
    finally:
        await transport.aclose()
    assert {f.verdict for f in early} == {Verdict.UNDECIDED}
    assert {f.verdict for f in settled} == {Verdict.NOT_ACCEPTED}
    assert fake.searches == 6, "three recipients asked, twice"


async def test_a_window_scan_stops_once_the_whole_batch_is_found(config, outgoing, fake):
    # A row without an address (erased) can only be found by a scan of the window: a crashed
    # batch that was accepted is found in its first pages, however much of the send came after.
    ours, later = PEOPLE + readers(22, start=4), readers(30, start=100)
    transport = transport_for(config, page_limit=10)
    try:
        batch = unknown(outgoing, ours)
        await transport.send_batch(outgoing, personalized(outgoing, ours), batch_key=KEY)
        await transport.send_batch(outgoing, personalized(outgoing, later),
                                   batch_key=OTHER_KEY)
        erased = UnknownBatch(batch.key, batch.edition_key, batch.subject, batch.sent_at,
                              (*batch.rows[:-1], UnknownRow(batch.rows[-1].subscriber_id, "")))
        findings = await transport.reconcile(erased, now=batch.sent_at + SOON)
        assert all(f.verdict is Verdict.ACCEPTED for f in findings)
        assert fake.searches == 3, "not the 6 pages (and the empty 7th) of the window"
        # One row missing: nothing says it is not on a later page, so every page is read.
        fake.searches = 0
        missing = UnknownBatch(batch.key, batch.edition_key, batch.subject, batch.sent_at,
                               (*erased.rows, UnknownRow(999, "")))
        findings = await transport.reconcile(missing, now=batch.sent_at + DEFAULT_SETTLE)
    finally:
        await transport.aclose()
    assert verdicts(findings)[999] is Verdict.NOT_ACCEPTED
    assert sum(v is Verdict.ACCEPTED for v in verdicts(findings).values()) == 25
    assert fake.searches == 7, "55 events in pages of 10, then the empty page"


async def test_a_next_page_on_another_host_is_not_followed(config, outgoing):
    asked = []

    def handler(request):
        asked.append(request.url)
        return httpx.Response(200, json=page(event(9), next_url="https://mailgun.evil.example"
                                             f"/v3/{DOMAIN}/events/W3siY"))

    with pytest.raises(LookupFailed, match="elsewhere") as err:
        await reconcile_only(config, unknown(outgoing, PEOPLE),
                             transport=httpx.MockTransport(handler))
    assert [u.host for u in asked] == ["127.0.0.1"], "the key never went to the other host"
    assert API_KEY not in str(err.value)


async def test_an_answer_that_is_not_json_is_a_failed_lookup(config, outgoing):
    html = httpx.MockTransport(lambda r: httpx.Response(200, text="<html>Mailgun</html>"))
    with pytest.raises(LookupFailed, match="not JSON"):
        await reconcile_only(config, unknown(outgoing, PEOPLE), transport=html)


async def test_a_batch_older_than_mailguns_retention_is_undecided(config, outgoing, fake):
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    batch = unknown(outgoing, PEOPLE, sent_at=now - RETENTION - timedelta(hours=1))
    findings = await reconcile_only(config, batch, now=now)
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], Verdict.UNDECIDED)
    assert "2 days" in findings[0].reason and fake.searches == 0


async def test_a_batch_without_rows_asks_nothing(config, outgoing, fake):
    assert await reconcile_only(config, unknown(outgoing, [])) == []
    assert fake.searches == 0
