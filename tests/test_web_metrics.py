"""GET /metrics: absent without metrics_token, a bearer token's, the database's figures (read
through a short cache) and the app's requests, and never an address or a name."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from newsletter.audience import subscribers
from newsletter.audience.tokens import make_token
from newsletter.config import load_config
from newsletter.delivery import beats, ledger
from newsletter.errors import ConfigError
from newsletter.store.db import connect
from newsletter.store.tables import confirmations, events
from newsletter.store.tables import subscribers as subscribers_table
from newsletter.web.metrics_collector import CACHE_SECONDS
from tests import ledger_helpers
from tests.web_helpers import SECRET, Clock, make_app, web_client, web_config

TOKEN = "metrics-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WEEK = "2026-W47"
NOW = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
PEOPLE = [("josé@bücher.example", "José “Pepe” Núñez"), ("zoë@bücher.example", "Zoë Ångström"),
          ("anders@bücher.example", "Anders Åberg"), ("ming@例え.jp", "明"),
          ("oskar@bücher.example", "Oskar Öhler")]


class Ticks:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def site(project, database_url):
    config = web_config(project, database_url, metrics_token=TOKEN)
    engine = connect(database_url)
    ticks = Ticks()
    app = make_app(config, Clock(), engine=engine, monotonic=ticks)
    return engine, ticks, web_client(app)


def scrape(client) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """The answer's text and its samples: (name, sorted labels) -> value."""
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, found


def add_event(engine, kind: str, recipient: str, n=[0]):  # noqa: B006 (a counter)
    n[0] += 1
    with engine.begin() as conn:
        conn.execute(events.insert().values(
            provider="postmark", event_id=f"e{n[0]}", kind=kind, recipient=recipient,
            reason=f"{recipient} said no", code="", provider_message_id="", message_id="",
            meta={}, raw="{}", occurred_at=NOW, received_at=NOW, subscriber_id=None,
            send_id=None, matched_by="none"))


def seed_people(engine) -> None:
    """PEOPLE as stored rows (a bulk insert, as an old import may have left them: the
    address rules of today refuse a non-ASCII local part)."""
    with engine.begin() as conn:
        conn.execute(subscribers_table.insert(), [
            {"email": email, "email_key": email.lower(), "name": name, "status": "active",
             "source": "test", "attributes": {"city": "Málaga"}, "consented_at": NOW,
             "created_at": NOW, "updated_at": NOW} for email, name in PEOPLE])


def recorded_send(engine) -> str:
    """A send of the five PEOPLE, recorded: 2 sent, 1 failed (406), 1 unknown, 1 pending
    again; its sender still registered. Returns the worker id."""
    seed_people(engine)
    send, _ = ledger.open_send(engine, WEEK, "h" * 64, "Subject", "postmark")
    worker = ledger_helpers.register_worker(engine, send.id)
    claim = ledger.claim(engine, send.id, worker, 10)
    ids = [r.id for r in claim.recipients]
    ledger.record(engine, send.id, worker, claim, [
        ledger.Outcome(ids[0], "sent", message_id="m1"),
        ledger.Outcome(ids[1], "sent", message_id="m2"),
        ledger.Outcome(ids[2], "failed", code="406", reason=f"{PEOPLE[2][0]} inactive"),
        ledger.Outcome(ids[3], "unknown", reason="timeout"),
        ledger.Outcome(ids[4], "retry", code="429", reason="slow down"),
    ], max_attempts=3, retry_delay=60)
    return worker


# -- on, off, and who may read it -------------------------------------------------------------


def test_without_a_token_there_is_no_route(project, database_url):
    app = make_app(web_config(project, database_url), Clock(), engine=connect(database_url))
    client = web_client(app)
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers=AUTH).status_code == 404
    assert app.state.metrics is None


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Bearer wrong-token", f"Bearer {TOKEN}x",
    f"Basic {base64.b64encode(f'metrics:{TOKEN}'.encode()).decode()}",
    f"Basic {TOKEN}", f"Token {TOKEN}", "Bearer tökén-ü".encode(), f"{TOKEN}",
])
def test_anything_but_the_bearer_token_gets_401_and_nothing_more(site, authorization):
    *_, client = site
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.content == b""


def test_the_token_works_as_configured_and_other_methods_are_refused(site):
    *_, client = site
    assert client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"}).status_code \
        == 200  # the scheme is case-insensitive (RFC 9110)
    assert client.post("/metrics", headers=AUTH).status_code == 405
    assert client.get("/metrics/", headers=AUTH).status_code == 404


def test_the_token_is_a_secret_of_the_config(project):
    config = load_config(project / "newsletter.toml",
                         environ={"NEWSLETTER_METRICS_TOKEN": TOKEN})
    assert config.metrics_token == TOKEN
    assert config.redacted()["metrics_token"] == "(set)"
    with pytest.raises(ConfigError, match="metrics_token") as caught:
        load_config(project / "newsletter.toml",
                    environ={"NEWSLETTER_METRICS_TOKEN": "two words"})
    assert "two words" not in str(caught.value)
    (project / "newsletter.toml").write_text(
        (project / "newsletter.toml").read_text() + f'\nmetrics_token = "{TOKEN}"\n')
    warned = load_config(project / "newsletter.toml", environ={})
    assert any("metrics_token" in w and TOKEN not in w for w in warned.warnings)


# -- the figures -------------------------------------------------------------------------------


def test_the_figures_are_the_database_s_and_name_nobody(site):
    engine, _, client = site
    worker = recorded_send(engine)
    for kind, who in [("bounced", PEOPLE[2][0]), ("bounced", PEOPLE[0][0]),
                      ("complained", PEOPLE[1][0]), ("delivered", PEOPLE[0][0])]:
        add_event(engine, kind, who)
    with engine.begin() as conn:
        conn.execute(confirmations.insert(), [
            {"subscriber_id": 1, "status": status, "attempts": 0, "next_attempt_at": NOW,
             "created_at": NOW, "updated_at": NOW}
            for status in ("pending", "pending", "sent")])
    text, found = scrape(client)

    def value(name, **labels):
        return found[(name, tuple(sorted(labels.items())))]

    assert value("newsletter_sends", status="sending") == 1
    assert value("newsletter_sends", status="done") == 0
    assert {s: value("newsletter_deliveries", status=s) for s in
            ("sent", "failed", "unknown", "pending", "in_flight", "skipped")} == {
        "sent": 2, "failed": 1, "unknown": 1, "pending": 1, "in_flight": 0, "skipped": 0}
    assert value("newsletter_messages_sent", provider="postmark") == 2
    assert value("newsletter_provider_errors", provider="postmark", code="406") == 1
    assert value("newsletter_provider_errors", provider="postmark", code="none") == 1
    assert value("newsletter_events", kind="bounced") == 2
    assert value("newsletter_events", kind="complained") == 1
    assert value("newsletter_events", kind="unsubscribed") == 0
    assert value("newsletter_brake_paused_sends") == 0
    assert value("newsletter_confirmation_outbox_pending") == 2
    beat = value("newsletter_sender_heartbeat_timestamp_seconds")
    assert abs(beat - datetime.now(UTC).timestamp()) < 3600
    for email, name in PEOPLE:
        local, _, domain = email.partition("@")
        for secret in (email, local, domain, name, name.split()[0]):
            assert secret not in text, secret
    assert "@" not in text
    ledger_helpers.unregister_worker(engine, worker)


def test_a_send_the_brake_paused_is_counted(site):
    engine, ticks, client = site
    recorded_send(engine)
    ledger.sends.pause(engine, ledger.find_send(engine, WEEK).id, "the brake: 5 % bounced")
    _, found = scrape(client)
    assert found[("newsletter_brake_paused_sends", ())] == 1
    assert found[("newsletter_sends", (("status", "paused"),))] == 1


def test_an_odd_error_code_is_counted_as_other(site):
    engine, _, client = site
    recorded_send(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE deliveries SET error_code = :code WHERE status = 'failed'"),
                     {"code": "550 josé@bücher.example"})
    text, found = scrape(client)
    assert found[("newsletter_provider_errors", (("code", "other"), ("provider", "postmark")))] \
        == 1
    assert "josé" not in text


def test_the_worker_s_heartbeat_and_the_mailbox_s_last_poll(site):
    engine, ticks, client = site
    text, found = scrape(client)
    for name in ("newsletter_worker_heartbeat_timestamp_seconds",
                 "newsletter_mailbox_last_poll_timestamp_seconds",
                 "newsletter_mailbox_last_poll_ok"):
        assert (name, ()) not in found, f"{name}: absent until the worker recorded it"
        assert f"# TYPE {name} gauge" in text
    beats.record(engine, beats.BeatName.WORKER, NOW)
    beats.record(engine, beats.BeatName.MAILBOX, NOW, error="login refused for "
                 "bounces@bücher.example")
    ticks.now += CACHE_SECONDS
    text, found = scrape(client)
    assert found[("newsletter_worker_heartbeat_timestamp_seconds", ())] == NOW.timestamp()
    assert found[("newsletter_mailbox_last_poll_timestamp_seconds", ())] == NOW.timestamp()
    assert found[("newsletter_mailbox_last_poll_ok", ())] == 0
    assert "bücher" not in text
    beats.record(engine, beats.BeatName.MAILBOX, NOW)
    ticks.now += CACHE_SECONDS
    assert scrape(client)[1][("newsletter_mailbox_last_poll_ok", ())] == 1


# -- the app's requests ------------------------------------------------------------------------


def test_requests_are_counted_by_route_template_method_and_status_class(site):
    engine, _, client = site
    reader = subscribers.add(engine, "jose@bücher.example", name="José")
    token = make_token(SECRET, "unsubscribe", reader.id)
    client.get("/subscribe")
    client.get("/subscribe")
    client.get(f"/unsubscribe/{token}")
    client.get("/no/such/page/for/josé@bücher.example")
    client.request("BREW", "/subscribe")
    client.get("/metrics")  # refused: counted like any other answer
    text, found = scrape(client)

    def count(route, method, status):
        labels = (("method", method), ("route", route), ("status", status))
        return found.get(("newsletter_http_requests_total", labels), 0)

    assert count("/subscribe", "GET", "2xx") == 2
    assert count("/unsubscribe/{token}", "GET", "2xx") == 1
    assert count("unmatched", "GET", "4xx") == 1
    assert count("/subscribe", "other", "4xx") == 1
    assert count("/metrics", "GET", "4xx") == 1
    histogram = (("method", "GET"), ("route", "/subscribe"), ("status", "2xx"))
    assert found[("newsletter_http_request_duration_seconds_count", histogram)] == 2
    assert token not in text and "bücher" not in text and "BREW" not in text


# -- the cache ---------------------------------------------------------------------------------


def test_a_second_scrape_within_the_cache_time_does_not_query_the_database(site):
    engine, ticks, client = site
    recorded_send(engine)
    statements: list[str] = []

    def note(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        _, first = scrape(client)
        assert statements, "the first scrape reads the database"
        read = len(statements)
        add_event(engine, "bounced", "late@bücher.example")
        statements.clear()
        ticks.now += CACHE_SECONDS - 0.5
        _, second = scrape(client)
        assert statements == []
        assert second[("newsletter_events", (("kind", "bounced"),))] == 0
        ticks.now += 1.0
        _, third = scrape(client)
        assert len(statements) == read
        assert third[("newsletter_events", (("kind", "bounced"),))] == 1
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)


def test_an_unreachable_database_is_503_not_500(project, database_url, tmp_path):
    config = web_config(project, database_url, metrics_token=TOKEN)
    dead = sa.create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}")
    client = web_client(make_app(config, Clock(), engine=dead))
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 503 and response.text == "database unavailable\n"
    assert client.get("/metrics").status_code == 401  # asked before the database


def test_each_app_has_its_own_registry(project, database_url):
    config = web_config(project, database_url, metrics_token=TOKEN)
    engine = connect(database_url)
    one, two = (web_client(make_app(config, Clock(), engine=engine)) for _ in range(2))
    one.get("/subscribe")
    _, found = scrape(two)
    labels = (("method", "GET"), ("route", "/subscribe"), ("status", "2xx"))
    assert ("newsletter_http_requests_total", labels) not in found
