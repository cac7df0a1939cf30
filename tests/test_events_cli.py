"""``newsletter events``, ``sends``, ``mailbox poll`` and the feedback lines of ``status``."""

import csv
import io
import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.feedback.events import EventKind
from newsletter.feedback.intake import Rules, take_in
from newsletter.store.db import connect
from tests.test_events_world import (
    NOW,
    SECRET,
    add_subscribers,
    event,
    record_send,
    token_for,
)

READERS = ["ana@example.net", "ben@bücher.example", "cleo@example.org", "dan@example.net"]


pytestmark = pytest.mark.usefixtures("engines_disposed")


@pytest.fixture
def logged(project, database_url):
    """Two sends: W46 heard back from with a bounce, a complaint, a deferral and a delivery,
    W47 with an unsubscribe by mail (after it started); plus one event for a message never
    sent."""
    engine = connect(database_url)
    ids = add_subscribers(engine, READERS)
    w46 = record_send(engine, {i: f"w46-{i}" for i in ids}, week="2026-W46",
                      created_at=NOW - timedelta(days=7))
    record_send(engine, {i: f"w47-{i}" for i in ids[:3]}, week="2026-W47")
    nasty = "550 “José” =HYPERLINK(\"x\") [bold]not markup[/bold]\r\nline two"
    take_in(engine, [
        event(EventKind.BOUNCED, event_id="b", provider_message_id=f"w46-{ids[0]}",
              recipient=READERS[0], reason=nasty),
        event(EventKind.COMPLAINED, event_id="c", provider_message_id=f"w46-{ids[1]}",
              recipient=READERS[1]),
        event(EventKind.DEFERRED, event_id="d", provider_message_id=f"w46-{ids[3]}",
              recipient=READERS[3]),
        event(EventKind.DELIVERED, event_id="ok", provider_message_id=f"w46-{ids[2]}"),
        event(EventKind.BOUNCED, event_id="x", provider_message_id="nobody",
              recipient="stranger@example.net"),
    ], Rules((SECRET,)), received_at=NOW)
    take_in(engine, [event(EventKind.UNSUBSCRIBED, provider="mailbox", event_id="m",
                           recipient="someone@else.example", message_id="",
                           metadata={"unsubscribe_token": token_for(ids[2])})],
            Rules((SECRET,)), received_at=NOW + timedelta(minutes=1),
            clock=lambda: NOW + timedelta(minutes=1))
    return {"env": {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_SECRET_KEY": SECRET},
            "ids": ids, "w46": w46, "nasty": nasty}


def run(env, *args):
    return CliRunner().invoke(cli, list(args), env=env)


def test_events_as_json_name_every_field(logged):
    result = run(logged["env"], "events", "--format", "json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)
    assert [(e["event_id"], e["kind"], e["week"], e["effect"]) for e in items] == [
        ("b", "bounced", "2026-W46", "suppressed"), ("c", "complained", "2026-W46", "suppressed"),
        ("d", "deferred", "2026-W46", "soft bounce 1 of 3"), ("ok", "delivered", "2026-W46",
                                                               "none"),
        ("x", "bounced", None, "none"), ("m", "unsubscribed", "2026-W47", "unsubscribed")]
    assert items[0]["reason"] == logged["nasty"]
    assert items[5]["matched_by"] == "token" and items[5]["subscriber_id"] == logged["ids"][2]


def test_events_filtered_by_week_and_kind_as_csv(logged):
    result = run(logged["env"], "events", "--week", "2026-W46", "--kind", "bounced",
                 "--format", "csv")
    assert result.exit_code == 0, result.output
    # The bytes: click's .output turns every CRLF into LF, the one inside the reason too.
    rows = list(csv.DictReader(io.StringIO(result.stdout_bytes.decode(), newline="")))
    assert [(r["event_id"], r["recipient"], r["reason"]) for r in rows] == [
        ("b", "ana@example.net", logged["nasty"])]
    empty = run(logged["env"], "events", "--week", "2026-W01")
    assert empty.exit_code == 0 and empty.output.strip() == "no events"


def test_events_as_a_table_show_reported_text_verbatim(logged):
    result = run(logged["env"], "events", "--kind", "bounced")
    assert result.exit_code == 0, result.output
    assert "[bold]not markup[/bold]" in result.output, "reported text is never rich markup"
    assert "stranger@example.net" in result.output


def test_an_unknown_kind_is_refused_in_one_line(logged):
    result = run(logged["env"], "events", "--kind", "opened")
    assert result.exit_code == 2 and "'opened' is not one of" in result.output


def test_sends_newest_first_with_counts_and_rates(logged):
    result = run(logged["env"], "sends", "--format", "json")
    assert result.exit_code == 0, result.output
    w47, w46 = json.loads(result.output)
    assert (w47["week"], w46["week"]) == ("2026-W47", "2026-W46")
    assert {k: w46[k] for k in ("sent", "bounced", "complained", "unsubscribed", "soft")} == {
        "sent": 4, "bounced": 1, "complained": 1, "unsubscribed": 0, "soft": 1}
    assert w46["bounced_rate"] == 0.25
    assert (w47["sent"], w47["bounced"], w47["unsubscribed"]) == (3, 0, 1)
    assert w47["unsubscribed_rate"] == pytest.approx(1 / 3, abs=1e-6)
    table = run(logged["env"], "sends")
    assert table.exit_code == 0
    assert table.output.index("2026-W47") < table.output.index("2026-W46")
    assert "1 (25.00%)" in table.output
    as_csv = list(csv.reader(io.StringIO(run(logged["env"], "sends", "--format", "csv").output)))
    assert as_csv[0][:3] == ["week", "status", "provider"] and len(as_csv) == 3


def test_status_adds_what_came_back(logged, project):
    result = run(logged["env"], "status", "--week", "2026-W46")
    assert result.exit_code == 0, result.output
    assert "feedback  1 bounced (25.00%), 1 complained (25.00%), 0 unsubscribed (0.00%)" \
        in result.output
    assert "1 soft-bounced" in result.output


def test_a_web_unsubscribe_counts_for_the_send_before_it(logged, database_url):
    from newsletter.audience import changes

    engine = connect(database_url)
    # dan got W46 only, and unsubscribes on the web a day before W47 started.
    changes.unsubscribe(engine, logged["ids"][3], changes.UnsubscribeMethod.ONE_CLICK,
                        changes.Consent(), NOW - timedelta(days=1))
    assert "1 unsubscribed (25.00%)" in run(logged["env"], "status", "--week", "2026-W46").output
    assert "1 unsubscribed (33.33%)" in run(logged["env"], "status", "--week", "2026-W47").output


def test_mailbox_poll_without_a_mailbox_is_a_one_line_error(logged):
    result = run(logged["env"], "mailbox", "poll")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: missing config key 'imap_host' in newsletter.toml (or set NEWSLETTER_IMAP_HOST)"]
    assert "Traceback" not in result.output


def test_mailbox_poll_against_a_closed_port_is_a_one_line_error(logged):
    env = dict(logged["env"], NEWSLETTER_IMAP_HOST="127.0.0.1", NEWSLETTER_IMAP_PORT="1",
               NEWSLETTER_IMAP_USERNAME="news", NEWSLETTER_IMAP_PASSWORD="pässwörd-secret",
               NEWSLETTER_IMAP_SECURITY="none")
    result = run(env, "mailbox", "poll")
    assert result.exit_code == 1
    assert result.output.startswith("error: IMAP 127.0.0.1:1: cannot connect")
    assert "pässwörd-secret" not in result.output and "Traceback" not in result.output
