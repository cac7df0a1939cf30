"""Postmark reconciliation: the search's query and the fake's answers against Postmark's
spec, the pure parts on their own, and ``reconcile`` against the fake provider after a batch
went out through the transport."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from newsletter.audience.recipient import Recipient
from newsletter.devtools import fake_search_postmark
from newsletter.devtools.fake_provider import FakeProvider, Faults, Record
from newsletter.providers import REGISTRY
from newsletter.providers.base import LookupFailed, Verdict
from newsletter.providers.postmark import (
    DEFAULT_SETTLE,
    PostmarkTransport,
    build_batch,
    parse_search,
    search_params,
)
from tests import reconcile_helpers as helpers
from tests.provider_specs import validate_query, validate_request, validate_response
from tests.reconcile_helpers import KEY, OTHER_KEY, PEOPLE, fast, unknown, verdicts
from tests.transport_fixtures import API_KEY, make_config, make_outgoing, personalized

# Postmark's published swagger predates message streams and metadata: its current Messages
# API reference (https://postmarkapp.com/developer/api/messages-api, "Outbound message
# search") lists the messagestream filter and the metadata_<key> filters.
ELSEWHERE = {"documented_elsewhere": frozenset({"messagestream"}),
             "prefixes_elsewhere": ("metadata_",)}


@pytest.fixture
def fake():
    with FakeProvider() as server:
        yield server


@pytest.fixture
def config(project, fake):
    return make_config(project, provider="postmark", provider_stream="newsletters",
                       provider_base_url=fake.base_url)


@pytest.fixture
def outgoing(config):
    return make_outgoing(config)


def transport_for(config, **options):
    return fast(PostmarkTransport, config, **options)


async def send_then_reconcile(config, outgoing, people, *, sent=None, after=timedelta(0),
                              **options):
    return await helpers.send_then_reconcile(transport_for(config, **options), outgoing,
                                             people, sent=sent, after=after)


# -- the pure parts ----------------------------------------------------------------------


def test_every_message_names_its_batch_within_postmarks_metadata_limits(outgoing):
    body = build_batch(outgoing, personalized(outgoing, PEOPLE), "newsletters", batch_key=KEY)
    validate_request("postmark", "/email/batch", "post", body,
                     documented_elsewhere=frozenset({"MessageStream", "Metadata"}))
    for message, person in zip(body, PEOPLE, strict=True):
        metadata = message["Metadata"]
        assert metadata == {"edition": outgoing.edition_key,
                            "subscriber_id": str(person.id), "batch": KEY}
        # Postmark: at most 10 fields, keys of up to 20 characters, values of up to 80.
        assert len(metadata) <= 10
        assert all(len(k) <= 20 and len(v) <= 80 for k, v in metadata.items())


def test_the_search_query_is_one_postmark_documents(outgoing):
    batch = unknown(outgoing, PEOPLE, sent_at=datetime(2026, 11, 23, 13, 0, 5, tzinfo=UTC))
    params = search_params(batch, "newsletters", 500, now=batch.sent_at + timedelta(minutes=3))
    validate_query("postmark", "/messages/outbound", "get", params, **ELSEWHERE)
    assert params == {
        "count": "500", "offset": "500", "messagestream": "newsletters",
        "metadata_batch": KEY,
        # US Eastern, standard time in November (UTC-5), an hour of margin on either side
        "fromdate": "2026-11-23T07:00:05", "todate": "2026-11-23T09:03:05",
    }


def test_the_search_dates_follow_eastern_daylight_saving_time(outgoing):
    batch = unknown(outgoing, PEOPLE, sent_at=datetime(2026, 7, 1, 16, 30, tzinfo=UTC))
    params = search_params(batch, "broadcast", 0, now=batch.sent_at)
    assert (params["fromdate"], params["todate"]) == ("2026-07-01T11:30:00",
                                                      "2026-07-01T13:30:00")  # UTC-4


def result(subscriber_id, *, edition="2026-W47.abc", batch=KEY, message_id="pm-1"):
    return {"MessageID": message_id, "To": [{"Email": "zoë@bücher.example", "Name": "Zoë"}],
            "Status": "Sent", "Metadata": {"edition": edition, "batch": batch,
                                           "subscriber_id": str(subscriber_id)}}


def test_parse_search_takes_only_our_edition_and_batch():
    payload = {"TotalCount": 4, "Messages": [
        result(1, message_id="pm-newer"), result(1, message_id="pm-older"),
        result(2, edition="2026-W46.def"), result(3, batch=OTHER_KEY),
        {"MessageID": "pm-9", "Metadata": {"subscriber_id": "9"}},  # not one of ours
    ]}
    validate_response("postmark", "/messages/outbound", "get", 200, payload)
    found = parse_search(payload, edition_key="2026-W47.abc", batch_key=KEY)
    assert list(found) == [1]
    assert found[1][0] == "pm-newer", "the newest result first, as Postmark orders them"
    assert found[1][1]["To"][0]["Email"] == "zoë@bücher.example", "its record is kept"


@pytest.mark.parametrize("payload", [[], {"TotalCount": 1}, {"Messages": ["pm-1"]}, None])
def test_an_answer_of_another_shape_is_a_failed_lookup(payload):
    with pytest.raises(LookupFailed, match="no list of messages"):
        parse_search(payload, edition_key="e", batch_key=KEY)


def test_settle_is_two_minutes_unless_configured(project):
    default = make_config(project, provider="postmark")
    assert PostmarkTransport(default).settle == timedelta(minutes=2)
    configured = make_config(project, provider="postmark", reconcile_settle="45")
    assert PostmarkTransport(configured).settle == timedelta(seconds=45)
    assert REGISTRY["postmark"].reconciles == "api"


# -- the fake's search, as Postmark documents it -------------------------------------------


def search(fake, token=API_KEY, **params):
    headers = {"X-Postmark-Server-Token": token} if token else {}
    response = httpx.get(f"{fake.base_url}/messages/outbound", params=params, headers=headers)
    return response.status_code, response.json()


def accept(fake, subscriber_id, *, stream="newsletters", batch=KEY, at=None, to=None):
    record = Record("postmark", to or f"Zoë <zoe{subscriber_id}@bücher.example>",
                    f"pm-{subscriber_id}", "Wöchentlich", {"batch": batch, "edition": "e",
                                                            "subscriber_id": str(subscriber_id)},
                    stream=stream)
    if at is not None:
        record.accepted_at = at.timestamp()
    fake.accept([record])


def test_the_fakes_results_are_shaped_as_postmarks_spec(fake):
    accept(fake, 1, to="=?utf-8?q?Jos=C3=A9_=C3=91=C3=BA=C3=B1ez?= <jose@xn--bcher-kva.example>")
    status, body = search(fake, count="10", offset="0")
    validate_response("postmark", "/messages/outbound", "get", status, body)
    assert body["TotalCount"] == 1
    [message] = body["Messages"]
    assert message["To"] == [{"Email": "jose@xn--bcher-kva.example", "Name": "José Ñúñez"}]
    assert message["Recipients"] == ["jose@xn--bcher-kva.example"]
    assert message["Metadata"]["subscriber_id"] == "1"
    assert (message["Status"], message["MessageStream"]) == ("Sent", "newsletters")


@pytest.mark.parametrize(("params", "says"), [
    ({"offset": "0"}, "'count' parameter is required"),
    ({"count": "10"}, "'offset' parameter is required"),
    ({"count": "501", "offset": "0"}, "between 1 and 500"),
    ({"count": "500", "offset": "9501"}, "cannot exceed 10,000"),
    ({"count": "10", "offset": "0", "metadata_batch": KEY, "metadata_edition": "e"},
     "one metadata filter"),
    ({"count": "10", "offset": "0", "todate": "2026-11-23T09:00:00-05:00"}, "without an offset"),
])
def test_the_fake_refuses_what_postmark_refuses(fake, params, says):
    status, body = search(fake, **params)
    assert status == 422 and says in body["Message"]
    validate_response("postmark", "/messages/outbound", "get", status, body)


def test_the_fake_wants_the_server_token(fake):
    fake.faults = Faults(bad_token="pm-revoked-token")
    for token in ("", "pm-revoked-token"):
        status, body = search(fake, token=token, count="10", offset="0")
        assert status == 401 and body["ErrorCode"] == 10


def test_the_fake_filters_as_postmark_documents(fake):
    monday = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 09:00 in New York
    accept(fake, 1, at=monday)
    accept(fake, 2, at=monday + timedelta(hours=2), stream="outbound")
    accept(fake, 3, at=monday + timedelta(hours=4), batch=OTHER_KEY)

    def ids(**params):
        status, body = search(fake, count="10", offset="0", **params)
        assert status == 200
        return [m["MessageID"] for m in body["Messages"]]

    assert ids() == ["pm-3", "pm-2", "pm-1"], "newest first"
    assert ids(messagestream="newsletters") == ["pm-3", "pm-1"]
    assert ids(metadata_batch=KEY) == ["pm-2", "pm-1"]
    assert ids(fromdate="2026-11-23T11:00:00", todate="2026-11-23T13:00:00") == ["pm-3", "pm-2"]
    assert ids(todate="2026-11-23T09:00:00") == ["pm-1"], "todate is inclusive"
    assert ids(fromdate="2026-11-24") == []
    assert ids(recipient="ZOE2@bücher.example") == ["pm-2"]
    assert ids(status="sent") == ids() and ids(status="queued") == []
    assert ids(tag="welcome") == []


def test_the_fake_pages_by_count_and_offset(fake):
    for n in range(1, 6):
        accept(fake, n, at=datetime(2026, 11, 23, 14, n, tzinfo=UTC))
    status, body = search(fake, count="2", offset="2")
    assert body["TotalCount"] == 5
    assert [m["MessageID"] for m in body["Messages"]] == ["pm-3", "pm-2"]


# -- reconcile against the fake -------------------------------------------------------------


async def test_every_accepted_message_is_found_with_its_id(config, outgoing, fake):
    findings, outcomes = await send_then_reconcile(config, outgoing, PEOPLE)
    assert [f.subscriber_id for f in findings] == [1, 2, 3]
    assert all(f.verdict is Verdict.ACCEPTED for f in findings)
    assert [f.message_id for f in findings] == [o.message_id for o in outcomes]
    assert {f.message_id for f in findings} == {r.message_id for r in fake.records}
    assert findings[0].raw["To"][0]["Name"] == "José Ñúñez"
    assert "newsletters" in findings[0].reason
    assert fake.searches == 1, "one page holds a whole batch"


async def test_a_batch_never_sent_is_not_accepted_once_settled(config, outgoing, fake):
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, sent=[],
                                            after=DEFAULT_SETTLE)
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], Verdict.NOT_ACCEPTED)


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


async def test_messages_not_searchable_yet_leave_the_batch_undecided(config, outgoing, fake):
    fake.faults = Faults(index_delay=3600)  # far longer than the settle
    findings, outcomes = await send_then_reconcile(config, outgoing, PEOPLE)
    assert all(o.kind == "sent" for o in outcomes) and len(fake.records) == 3
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], Verdict.UNDECIDED)


async def test_a_failing_search_is_a_failed_lookup_after_the_retries(config, outgoing, fake):
    fake.faults = Faults(search_p500=1.0)
    with pytest.raises(LookupFailed) as err:
        await send_then_reconcile(config, outgoing, PEOPLE)
    assert err.value.status == 500 and fake.searches == 3
    assert "search failed" in str(err.value) and API_KEY not in str(err.value)


async def test_a_search_that_recovers_within_the_retries_answers(config, outgoing, fake):
    fake.faults = Faults(search_script="500,ok")
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE)
    assert all(f.verdict is Verdict.ACCEPTED for f in findings) and fake.searches == 2


async def test_a_refused_token_is_a_failed_lookup_without_the_token(config, outgoing, fake):
    fake.faults = Faults(bad_token=API_KEY)
    transport = transport_for(config)
    try:
        with pytest.raises(LookupFailed) as err:
            await transport.reconcile(unknown(outgoing, PEOPLE), now=datetime.now(UTC))
    finally:
        await transport.aclose()
    assert err.value.status == 401 and API_KEY not in str(err.value)


async def test_another_editions_messages_under_the_same_batch_key_are_not_taken(
        config, outgoing, fake):
    fake.accept([Record("postmark", "René <rene@xn--caf-dma.example>", "pm-elsewhere",
                        outgoing.subject, {"edition": "2026-W46.0000", "subscriber_id": "3",
                                           "batch": KEY}, stream="newsletters")])
    findings, _ = await send_then_reconcile(config, outgoing, PEOPLE, sent=PEOPLE[:2],
                                            after=DEFAULT_SETTLE)
    assert verdicts(findings) == {1: Verdict.ACCEPTED, 2: Verdict.ACCEPTED,
                                  3: Verdict.NOT_ACCEPTED}


async def test_results_past_one_page_are_paged_through(config, outgoing, fake):
    people = PEOPLE + [Recipient(id=i, email=f"leser{i}@straße.example", name=f"Léa {i}")
                       for i in range(4, 8)]
    findings, outcomes = await send_then_reconcile(config, outgoing, people, search_page=3)
    assert all(f.verdict is Verdict.ACCEPTED for f in findings)
    assert [f.message_id for f in findings] == [o.message_id for o in outcomes]
    assert fake.searches == 3, "7 messages in pages of 3"


async def test_a_search_past_postmarks_10000_cap_is_a_failed_lookup(config, outgoing):
    offsets = []

    def handler(request):
        offsets.append(int(request.url.params["offset"]))
        count = int(request.url.params["count"])
        page = [result(10_000 + i, edition=outgoing.edition_key, message_id=f"pm-{i}")
                for i in range(count)]
        return httpx.Response(200, json={"TotalCount": 20_000, "Messages": page})

    transport = transport_for(config, transport=httpx.MockTransport(handler))
    try:
        with pytest.raises(LookupFailed, match="10,000"):
            await transport.reconcile(unknown(outgoing, PEOPLE), now=datetime.now(UTC))
    finally:
        await transport.aclose()
    assert offsets == list(range(0, 10_000, 500)), "count + offset never past 10,000"


async def test_an_answer_that_is_not_json_is_a_failed_lookup(config, outgoing):
    transport = transport_for(config, transport=httpx.MockTransport(
        lambda request: httpx.Response(200, text="<html>maintenance</html>")))
    try:
        with pytest.raises(LookupFailed, match="not JSON"):
            await transport.reconcile(unknown(outgoing, PEOPLE), now=datetime.now(UTC))
    finally:
        await transport.aclose()


async def test_a_batch_older_than_postmarks_retention_is_undecided(config, outgoing, fake):
    transport = transport_for(config)
    batch = unknown(outgoing, PEOPLE, sent_at=datetime.now(UTC) - timedelta(days=46))
    try:
        findings = await transport.reconcile(batch, now=datetime.now(UTC))
    finally:
        await transport.aclose()
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], Verdict.UNDECIDED)
    assert "45 days" in findings[0].reason and fake.searches == 0


@pytest.mark.parametrize(("older", "verdict"), [(False, Verdict.UNDECIDED),
                                                (True, Verdict.NOT_ACCEPTED)])
async def test_not_found_in_a_week_old_batch_counts_only_while_older_mail_is_kept(
        config, outgoing, fake, older, verdict):
    # Retention can be set as short as 7 days: a batch older than that that is not found may
    # have been purged, unless Postmark still shows a message older than the batch.
    sent_at = datetime.now(UTC) - timedelta(days=10)
    if older:
        accept(fake, 99, at=sent_at - timedelta(days=2), batch=OTHER_KEY, stream="outbound")
    transport = transport_for(config)
    try:
        findings = await transport.reconcile(unknown(outgoing, PEOPLE, sent_at=sent_at),
                                             now=datetime.now(UTC))
    finally:
        await transport.aclose()
    assert verdicts(findings) == dict.fromkeys([1, 2, 3], verdict)
    assert fake.searches == 2
    if not older:
        assert "retention" in findings[0].reason


def test_the_fake_search_module_answers_only_its_path():
    assert fake_search_postmark.handles("/messages/outbound")
    assert not fake_search_postmark.handles("/messages/outbound/pm-1/details")
