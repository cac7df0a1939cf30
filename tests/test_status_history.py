"""The status history: every change recorded with who made it, from what to what and when;
an unconfirmed sign-up that overwrites nothing of an earlier unsubscribe; the backfill of
migration 0007."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.audience import changes, lookup, subscribers
from newsletter.audience.tokens import make_token
from newsletter.cli.main import cli
from newsletter.delivery import ledger
from newsletter.delivery.confirmations import drain_outbox
from newsletter.feedback.events import EventKind
from newsletter.feedback.intake import Rules, take_in
from newsletter.store import db
from newsletter.store.db import connect
from newsletter.store.tables import status_changes
from newsletter.web.subscribe import consent_text
from tests import ledger_helpers
from tests.audience_helpers import mark_bounced
from tests.test_events_world import SECRET as EVENTS_SECRET
from tests.test_events_world import add_subscribers, event, record_send, token_for
from tests.test_web_migration import migrate
from tests.web_helpers import (
    SECRET,
    confirm_link,
    field,
    newest_confirm_path,
    open_site,
    path_of,
    read_eml,
    row,
    sign_up,
    web_client,
)

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
MAIL_CLIENT = "Mail/16.0 (Lettre)"  # header values are ASCII on the wire
STRANGER = "Mozilla/5.0 Stranger/2.0"


pytestmark = pytest.mark.usefixtures("engines_disposed")


@pytest.fixture
def site(project, database_url):
    return open_site(project, database_url)


def history(engine: sa.Engine, subscriber_id: int) -> list[sa.Row]:
    h = status_changes.c
    with engine.connect() as conn:
        return conn.execute(sa.select(status_changes).where(h.subscriber_id == subscriber_id)
                            .order_by(h.id)).all()


def steps(engine: sa.Engine, subscriber_id: int) -> list[tuple[str | None, str, str]]:
    return [(r.from_status, r.to_status, r.method) for r in history(engine, subscriber_id)]


# -- an anonymous sign-up overwrites nothing ---------------------------------------------------

KEPT = ("source", "consented_at", "confirmed_at", "unsubscribed_at", "unsubscribe_reason",
        "unsubscribe_method", "unsubscribe_ip", "unsubscribe_user_agent", "consent_ip",
        "consent_user_agent", "consent_text")


def test_an_unconfirmed_sign_up_keeps_the_unsubscribe_on_record_until_confirmed(site, project):
    config, engine, clock, app = site
    zoe = subscribers.add(engine, "Zoë O’Brien <zoe@bücher.example>",
                          source="import:liste-été.csv")
    reader = web_client(app, headers={"User-Agent": MAIL_CLIENT})
    clock.advance(days=30)
    token = make_token(SECRET, "unsubscribe", zoe.id)
    assert reader.post(f"/unsubscribe/{token}", data=ONE_CLICK).status_code == 200
    unsubscribed = row(engine, "zoe@bücher.example")
    assert unsubscribed["status"] == "unsubscribed"
    assert unsubscribed["unsubscribe_method"] == "one-click"

    clock.advance(days=30)  # someone else types her address into the form
    sign_up(web_client(app, headers={"User-Agent": STRANGER}), clock, "zoe@bücher.example")
    signed_at = clock.now
    pending = row(engine, "zoe@bücher.example")
    assert pending["status"] == "pending"
    assert {k: pending[k] for k in KEPT} == {k: unsubscribed[k] for k in KEPT}
    assert steps(engine, zoe.id) == [(None, "active", "cli"), ("active", "unsubscribed", "web"),
                                     ("unsubscribed", "pending", "web")]

    assert drain_outbox(config, engine, clock=clock) == 1
    link = newest_confirm_path(project)
    clock.advance(minutes=5)
    page = reader.get(link)
    reader.post(link, data={"action": "confirm", "csrf": field(page.text, "csrf")})
    confirmed = row(engine, "zoe@bücher.example")
    assert confirmed["status"] == "active" and confirmed["confirmed_at"] == clock.now
    # What was confirmed is now the record: the sign-up's consent, no unsubscribe.
    assert confirmed["source"] == "web" and confirmed["consented_at"] == signed_at
    assert confirmed["consent_user_agent"] == STRANGER
    assert confirmed["consent_text"] == consent_text(config)
    assert confirmed["unsubscribed_at"] is None and confirmed["unsubscribe_method"] is None
    # ... and the history still holds the unsubscribe, as it was made.
    full = history(engine, zoe.id)
    assert [(r.from_status, r.to_status, r.method) for r in full][-1] == (
        "pending", "active", "web")
    (gone,) = [r for r in full if r.to_status == "unsubscribed"]
    assert gone.at == unsubscribed["unsubscribed_at"]
    assert gone.ip == "testclient" and gone.user_agent == MAIL_CLIENT
    assert gone.detail == "unsubscribed (one-click)"


def test_a_sign_up_that_changes_nothing_is_recorded_and_mails_nothing(site, project):
    config, engine, clock, app = site
    ana = subscribers.add(engine, "ana@exämple.org", name="Ana Núñez")
    mark_bounced(engine, "ana@exämple.org", "550 5.1.1 <ana@exämple.org> unknown")
    sign_up(web_client(app), clock, "Ana@Exämple.org")
    assert row(engine, "ana@exämple.org")["status"] == "bounced"
    last = history(engine, ana.id)[-1]
    assert (last.from_status, last.to_status, last.method) == ("bounced", "bounced", "web")
    assert last.detail == "signed up while bounced: nothing changed"
    assert drain_outbox(config, engine, clock=clock) == 0
    assert not list((project / "outbox").rglob("*.eml"))


# -- every path names itself -------------------------------------------------------------------


def test_the_command_line_and_an_import_record_cli_and_import(project, database_url, tmp_path):
    config = tmp_path / "newsletter.toml"
    config.write_text(f'database_url = "{database_url}"\n', encoding="utf-8")

    def run(*args: str):
        result = CliRunner().invoke(cli, ["--config", str(config), "subscribers", *args])
        assert result.exit_code == 0, result.output
        return result

    run("add", "José Ñandú <jose@bücher.example>")
    run("unsubscribe", "jose@bücher.example")
    csv = tmp_path / "liste-été.csv"
    csv.write_text("email,name,status\n"
                   + "".join(f"lea{i}@exämple.org,Léa “{i}” Dupré,active\n" for i in range(40))
                   + "gone@exämple.org,Gaël,unsubscribed\n", encoding="utf-8")
    engine = connect(database_url)
    statements = []

    def count(conn, cursor, statement, *rest):
        if "INSERT INTO status_changes" in statement:
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    run("import", str(csv))
    sa.event.remove(engine, "before_cursor_execute", count)
    jose = lookup.get(engine, "jose@bücher.example")
    assert steps(engine, jose.id) == [(None, "active", "cli"), ("active", "unsubscribed", "cli")]
    h = status_changes.c
    with engine.connect() as conn:
        imported = conn.execute(sa.select(h.from_status, h.to_status, h.method, h.detail)
                                .where(h.method == "import")).all()
    assert len(imported) == 41
    assert set(imported) == {(None, "active", "import", "imported from liste-été.csv"),
                             (None, "unsubscribed", "import", "imported from liste-été.csv")}
    assert len(statements) == 1  # the import's history: one INSERT ... SELECT for the batch


def test_web_pages_and_the_api_record_web_and_api(site, project):
    config, engine, clock, app = site
    client = web_client(app)
    sign_up(client, clock, "form@bücher.example")
    clock.advance(minutes=11)
    token = client.get("/api/subscribe").json()["form_token"]
    clock.advance(seconds=3)
    client.post("/api/subscribe", json={"email": "script@bücher.example", "form_token": token})
    form, script = row(engine, "form@bücher.example"), row(engine, "script@bücher.example")
    assert steps(engine, form["id"]) == [(None, "pending", "web")]
    assert steps(engine, script["id"]) == [(None, "pending", "api")]

    drain_outbox(config, engine, clock=clock)
    for path in (project / "outbox" / "confirmations").glob("*.eml"):
        link = path_of(confirm_link(read_eml(path)))
        client.post(link, data={"action": "confirm", "csrf": field(client.get(link).text,
                                                                   "csrf")})
    unsubscribe = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', form['id'])}"
    page = client.get(unsubscribe)
    done = client.post(unsubscribe, data={"action": "unsubscribe",
                                          "csrf": field(page.text, "csrf")})
    clock.advance(minutes=1)
    client.post(unsubscribe, data={"action": "resubscribe", "csrf": field(done.text, "csrf")})
    assert steps(engine, form["id"]) == [
        (None, "pending", "web"), ("pending", "active", "web"),
        ("active", "unsubscribed", "web"), ("unsubscribed", "active", "web")]
    assert steps(engine, script["id"])[-1] == ("pending", "active", "web")


def test_provider_events_record_webhook_and_the_mailbox_mailbox(database_url):
    engine = connect(database_url)
    ids = add_subscribers(engine, ["ana@exämple.org", "ben@bücher.example",
                                   "cleo@exämple.org", "dan@bücher.example"])
    record_send(engine, dict(zip(ids, ["pm-a", "pm-b", "pm-c", "pm-d"], strict=True)))
    rules = Rules((EVENTS_SECRET,), soft_bounce_limit=3)
    take_in(engine, [
        event(EventKind.BOUNCED, event_id="1", provider_message_id="pm-a",
              reason="550 5.1.1 <ana@exämple.org>: Recipient address rejected"),
        event(EventKind.COMPLAINED, event_id="2", provider_message_id="pm-b", reason="abuse"),
    ], rules, received_at=datetime.now(UTC))
    take_in(engine, [
        event(EventKind.COMPLAINED, provider="mailbox", event_id="3",
              provider_message_id="pm-c"),
        event(EventKind.UNSUBSCRIBED, provider="mailbox", event_id="4",
              recipient="other@example.org", metadata={"unsubscribe_token": token_for(ids[3])}),
    ], rules, received_at=datetime.now(UTC))
    assert [steps(engine, i) for i in ids] == [
        [("active", "bounced", "webhook")], [("active", "complained", "webhook")],
        [("active", "complained", "mailbox")], [("active", "unsubscribed", "mailbox")]]
    (bounce,) = history(engine, ids[0])
    assert "ana@" not in bounce.detail and "exämple" not in bounce.detail
    assert bounce.detail == ("bounced (postmark): 550 5.1.1 (address) Recipient address "
                             "rejected")


def test_a_bad_address_reported_during_a_send_records_send(database_url):
    engine = connect(database_url)
    ana = subscribers.add(engine, "ana@exämple.org")
    send, _ = ledger.open_send(engine, "2026-W47", "h1", "Subject", "postmark")
    worker = ledger_helpers.register_worker(engine, send.id)
    claim = ledger.claim(engine, send.id, worker, 5)
    ledger.record(engine, send.id, worker, claim, [
        ledger.Outcome(ana.id, "failed", code="406", reason="inactive", bad_address=True)],
        max_attempts=3, retry_delay=0)
    ledger_helpers.unregister_worker(engine, worker)
    assert steps(engine, ana.id) == [(None, "active", "cli"), ("active", "bounced", "send")]


def test_erasing_a_subscriber_erases_their_history(database_url):
    engine = connect(database_url)
    ana = subscribers.add(engine, "ana@exämple.org")
    changes.unsubscribe_address(engine, "ana@exämple.org")
    subscribers.remove(engine, "ana@exämple.org")
    assert history(engine, ana.id) == []


# -- the backfill ------------------------------------------------------------------------------


def test_the_migration_gives_every_subscriber_on_the_list_its_first_row(database_url):
    engine = db._engine(db.normalize_url(database_url))
    migrate(engine, "0006_brake")
    t = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    rows = [
        # id, status, consented, confirmed, unsubscribed, updated
        (1, "active", t, t + timedelta(hours=1), None, t + timedelta(days=3)),
        (2, "pending", t + timedelta(hours=2), None, None, t + timedelta(hours=2)),
        (3, "unsubscribed", t, t, t + timedelta(days=1), t + timedelta(days=2)),
        (4, "bounced", None, None, None, t + timedelta(days=4)),
    ]
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO subscribers (id, email, email_key, name, status, source, attributes, "
            "consented_at, confirmed_at, unsubscribed_at, created_at, updated_at) "
            "VALUES (:id, :e, :e, 'Zoë “Zo”', :s, 'cli', '{}', :c, :k, :u, :t, :up)"),
            [{"id": i, "e": f"r{i}@bücher.example", "s": s, "c": c, "k": k, "u": u, "t": t,
              "up": up} for i, s, c, k, u, up in rows])
    migrate(engine, "0007_status_history")
    h = status_changes.c
    with engine.connect() as conn:
        found = conn.execute(sa.select(h.subscriber_id, h.from_status, h.to_status, h.method,
                                       h.at).order_by(h.subscriber_id)).all()
    assert [tuple(r) for r in found] == [
        (1, None, "active", "unknown", t + timedelta(hours=1)),
        (2, None, "pending", "unknown", t + timedelta(hours=2)),
        (3, None, "unsubscribed", "unknown", t + timedelta(days=1)),
        (4, None, "bounced", "unknown", t + timedelta(days=4)),
    ]
    migrate(engine, "0006_brake", down=True)
    with engine.connect() as conn:
        assert "status_changes" not in sa.inspect(conn).get_table_names()
        assert conn.execute(sa.text("SELECT count(*) FROM subscribers")).scalar() == 4
