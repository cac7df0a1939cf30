"""``newsletter mailbox poll`` against a real Dovecot: reports and requests stored and applied,
the mail filed away once handled, and left in place when the database cannot take it."""

import dataclasses
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.feedback.mailbox import PROCESSED_FOLDER
from newsletter.feedback.mailbox_job import poll_once
from newsletter.store.db import connect
from newsletter.store.tables import events, subscribers
from tests.test_events_world import NOW, make_config, our_message_id, record_send, status_of
from tests.test_mailbox import PASSWORD, append, dovecot, folder_state

SECRET = "test-secret"  # what the fixtures' unsubscribe tokens are signed with
CONTENT_HASH = "0123456789" + "ab" * 27  # their Message-IDs carry 0123456789
PEOPLE = {42: "jose@bücher.example", 1234567: "ana@example.net",
          9: "nobody.here.2026@gmail.com", 46: "reader@example.net"}
MAIL = ["postfix-bounce.eml", "exim-bounce.eml", "gmail-bounce.eml", "arf-redacted.eml",
        "mailto-unsubscribe.eml", "out-of-office.eml", "postfix-delayed.eml"]


pytestmark = pytest.mark.usefixtures("engines_disposed")


@pytest.fixture(scope="module")
def server():
    with dovecot(tls=False) as running:
        yield running


def world(database_url, server, user):
    engine = connect(database_url)
    with engine.begin() as conn:  # the ids the fixtures' Message-IDs and tokens name
        conn.execute(subscribers.insert(), [
            {"id": i, "email": e, "email_key": e, "name": None, "status": "active",
             "source": "test", "attributes": {}, "created_at": NOW, "updated_at": NOW}
            for i, e in PEOPLE.items()])
    send_id = record_send(engine, {i: our_message_id(i, content_hash=CONTENT_HASH)
                                   for i in PEOPLE}, provider="smtp", content_hash=CONTENT_HASH)
    config = make_config(database_url, secret_key=SECRET, imap_host="127.0.0.1",
                         imap_port=server.plain_port, imap_username=user,
                         imap_password=PASSWORD, imap_security="none")
    return engine, config, send_id


def test_a_poll_stores_reports_applies_them_and_files_the_mail(database_url, server):
    user = f"job-{database_url[:6]}"
    engine, config, send_id = world(database_url, server, user)
    append(server, user, MAIL)
    summary = poll_once(config, engine, clock=lambda: NOW)
    assert (summary.processed, summary.skipped, summary.failed) == (6, 1, [])
    statuses = {i: status_of(engine, i) for i in PEOPLE}
    assert statuses[1234567] == statuses[9] == "bounced"
    assert statuses[42] == "bounced", "the postfix report, read first, bounced jose"
    assert statuses[46] == "active"
    with engine.connect() as conn:
        rows = conn.execute(sa.select(events.c.kind, events.c.recipient, events.c.matched_by,
                                      events.c.send_id, events.c.effect)
                            .order_by(events.c.id)).all()
    by_recipient = {(r.kind, r.recipient): r for r in rows}
    assert by_recipient[("bounced", "jose@xn--bcher-kva.example")].matched_by == "token"
    assert by_recipient[("bounced", "lucía@example.net")].matched_by == "", \
        "the other recipient of ana's returned message is not ana"
    assert by_recipient[("deferred", "Maria@Example.com")].matched_by == ""
    assert by_recipient[("complained", "")].matched_by == "token"  # redacted: the token tells
    assert by_recipient[("complained", "")].effect == "already bounced"
    assert by_recipient[("unsubscribed", "jose@bücher.example")].effect == "already bounced"
    assert {r.send_id for r in rows if r.matched_by} == {send_id}
    assert len(folder_state(server, user, PROCESSED_FOLDER)) == 6
    assert len(folder_state(server, user, "INBOX")) == 1  # the out-of-office reply, for a person

    again = poll_once(config, engine, clock=lambda: NOW)
    assert (again.processed, again.intake.events) == (0, 0)
    append(server, user, ["postfix-bounce.eml"])  # the same report delivered twice
    twice = poll_once(config, engine, clock=lambda: NOW)
    assert (twice.processed, twice.intake.new, twice.intake.duplicates) == (1, 0, 1)


def test_a_mail_the_database_cannot_take_stays_for_the_next_poll(database_url, server):
    user = f"down-{database_url[:6]}"
    engine, config, _ = world(database_url, server, user)
    append(server, user, ["mailto-unsubscribe.eml"])
    events.drop(engine)
    summary = poll_once(config, engine, clock=lambda: NOW)
    assert summary.processed == 0 and len(summary.failed) == 1
    assert "not stored" in summary.failed[0] and "jose" not in summary.failed[0]
    assert len(folder_state(server, user, "INBOX")) == 1
    events.create(engine)
    assert poll_once(config, engine, clock=lambda: NOW).processed == 1
    assert status_of(engine, 42) == "unsubscribed"
    assert folder_state(server, user, "INBOX") == []


def test_the_command_prints_a_summary_and_fails_when_mail_was_left(database_url, server,
                                                                    project):
    user = f"cli-{database_url[:6]}"
    engine, config, _ = world(database_url, server, user)
    append(server, user, ["mailto-unsubscribe.eml", "out-of-office.eml"])
    env = {f"NEWSLETTER_{f.name.upper()}": str(getattr(config, f.name))
           for f in dataclasses.fields(config)
           if f.name in ("database_url", "secret_key", "imap_host", "imap_port",
                         "imap_username", "imap_password", "imap_security")}
    result = CliRunner().invoke(cli, ["mailbox", "poll"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "read 1 mail(s): 1 event(s), 1 new, 0 already stored; 1 unsubscribed; "
        "1 left in place (not a report or unsubscribe request)")
    assert PASSWORD not in result.output
    from newsletter.delivery.beats import read_beats

    polled = read_beats(engine)["mailbox"]  # a poll from the command counts as a poll too
    assert polled.ok and polled.error is None


def test_the_worker_records_each_poll_and_how_it_went(database_url, server):
    from newsletter.delivery.beats import read_beats
    from newsletter.worker.housekeeping import poll_mailbox

    user = f"beat-{database_url[:6]}"
    engine, config, _ = world(database_url, server, user)
    append(server, user, ["mailto-unsubscribe.eml"])
    poll_mailbox(config, clock=lambda: NOW)
    polled = read_beats(engine)["mailbox"]
    assert (polled.at, polled.ok, polled.error) == (NOW, True, None)
    assert status_of(engine, 42) == "unsubscribed"

    wrong = dataclasses.replace(config, imap_password="wrong-“pässwörd”")
    later = NOW + timedelta(minutes=5)
    poll_mailbox(wrong, clock=lambda: later)
    failed = read_beats(engine)["mailbox"]
    assert (failed.at, failed.ok) == (later, False)
    assert failed.error and "wrong-“pässwörd”" not in failed.error and "\n" not in failed.error
