"""The event log and the replay tokens on SQLite and PostgreSQL: once each, whole, migrated."""

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from newsletter.feedback.events import EventKind, ReplayedRequest
from newsletter.feedback.intake import Rules, take_in
from newsletter.feedback.matching import NOT_OURS, Match
from newsletter.feedback.replay_store import DatabaseReplayGuard, DeferredReplay
from newsletter.feedback.store import clean, raw_json, record
from newsletter.store import db
from newsletter.store.db import begin_write, connect
from newsletter.store.tables import events, webhook_tokens
from tests.test_events_world import (
    NOW,
    SECRET,
    add_subscribers,
    event,
    record_send,
    status_of,
    stored_events,
)

RULES = Rules((SECRET,))
NASTY = "José “quoted” \x00 NUL, CR\r LF\n VT\x0b U+2028\u2028 emoji 📭 lone \ud800 surrogate"


pytestmark = pytest.mark.usefixtures("engines_disposed")


def test_a_repeated_event_is_stored_once_and_counted_as_a_duplicate(database_url):
    engine = connect(database_url)
    batch = [event(event_id="a"), event(event_id="b"), event(event_id="a")]
    first = take_in(engine, batch, RULES, received_at=NOW)
    assert (first.events, first.new, first.duplicates) == (3, 2, 1)
    again = take_in(engine, batch[:2], RULES, received_at=NOW + timedelta(hours=1))
    assert (again.new, again.duplicates) == (0, 2)
    rows = stored_events(engine)
    assert [r.event_id for r in rows] == ["a", "b"]
    assert {r.received_at for r in rows} == {NOW}, "the first arrival is what is kept"


def test_the_same_event_id_from_two_providers_is_two_events(database_url):
    engine = connect(database_url)
    take_in(engine, [event(provider="postmark", event_id="1"),
                     event(provider="resend", event_id="1")], RULES, received_at=NOW)
    assert [(r.provider, r.event_id) for r in stored_events(engine)] == [
        ("postmark", "1"), ("resend", "1")]


def test_payloads_with_nul_control_characters_and_surrogates_are_kept_whole(database_url):
    engine = connect(database_url)
    raw = {"email": NASTY, "nested": [{"reason": NASTY}], "n": 1.5, "ok": True, "none": None}
    mail = "From: a@b\r\nSubject: " + NASTY + "\r\n\r\nbody \x00 \\x80 end"
    batch = [event(event_id=NASTY, recipient=NASTY, reason=NASTY, code=NASTY,
                   metadata={"edition": NASTY}, raw=raw),
             event(provider="mailbox", event_id="mail", raw=mail)]
    take_in(engine, batch, RULES, received_at=NOW)
    first, second = stored_events(engine)
    assert json.loads(first.raw) == raw and json.loads(second.raw) == mail  # lossless
    assert "\x00" not in first.raw and "\x00" not in second.raw
    assert first.event_id == first.recipient == first.reason == clean(NASTY)
    assert "\ufffd NUL" in first.reason and "\r LF\n VT\x0b U+2028\u2028 emoji 📭" in first.reason
    assert first.meta == {"edition": clean(NASTY)}
    take_in(engine, batch, RULES, received_at=NOW)
    assert len(stored_events(engine)) == 2, "the cleaned id still deduplicates"


def test_raw_json_is_readable_text_unless_it_must_escape():
    assert raw_json({"a": "José 📭"}) == '{"a":"José 📭"}'
    assert raw_json("x\x00y") == '"x\\u0000y"'
    assert raw_json({"bad": "\udc80"}) == '{"bad":"\\udc80"}'


def test_many_events_of_one_request_are_one_transaction(database_url):
    engine = connect(database_url)
    batch = [event(event_id=f"e{i}") for i in range(900)]  # more than one insert chunk
    bad = event(event_id="bad")
    object.__setattr__(bad, "kind", "not-a-kind")  # the CHECK constraint refuses it
    poisoned = batch + [bad]
    with pytest.raises(sa.exc.IntegrityError):
        take_in(engine, poisoned, RULES, received_at=NOW)
    assert stored_events(engine) == [], "nothing of a failed request is stored"
    assert take_in(engine, batch, RULES, received_at=NOW).new == 900


def test_an_event_whose_effect_was_not_applied_gets_it_on_the_retry(database_url):
    engine = connect(database_url)
    [sid] = add_subscribers(engine, ["ana@example.net"])
    send_id = record_send(engine, {sid: "pm-1"})
    bounce = event(provider_message_id="pm-1", recipient="ana@example.net")
    with begin_write(engine) as conn:  # the process died after storing, before applying
        record(conn, [bounce], [Match(sid, send_id, "ledger")], received_at=NOW)
    assert status_of(engine, sid) == "active"
    [row] = stored_events(engine)
    assert row.effect is None
    retry = take_in(engine, [bounce], RULES, received_at=NOW)
    assert (retry.new, retry.duplicates, dict(retry.effects)) == (0, 1, {"suppressed": 1})
    assert status_of(engine, sid) == "bounced"
    assert stored_events(engine)[0].effect == "suppressed"
    assert dict(take_in(engine, [bounce], RULES, received_at=NOW).effects) == {}


def test_unmatched_and_effectless_events_are_marked_done_at_once(database_url):
    engine = connect(database_url)
    with begin_write(engine) as conn:
        record(conn, [event(event_id="u"), event(EventKind.DELIVERED, event_id="d")],
               [NOT_OURS, Match(1, None, "address")], received_at=NOW)
    assert [(r.effect, r.applied_at) for r in stored_events(engine)] == [("none", NOW)] * 2


def test_the_database_replay_guard(database_url):
    engine = connect(database_url)
    now = [NOW]
    guard = DatabaseReplayGuard(engine, clock=lambda: now[0])
    later = NOW + timedelta(hours=12)
    assert guard.claim("mailgun", "tok-1", "fp-a", later)
    assert guard.claim("mailgun", "tok-1", "fp-a", later), "a retry of the same event passes"
    assert not guard.claim("mailgun", "tok-1", "fp-b", later), "another event with it: replay"
    assert guard.claim("other", "tok-1", "fp-b", later), "tokens are per provider"
    now[0] = later + timedelta(seconds=1)
    assert guard.claim("mailgun", "tok-2", "fp-c", now[0] + timedelta(hours=1))
    with engine.connect() as conn:
        tokens = conn.execute(sa.select(webhook_tokens.c.token, webhook_tokens.c.provider)
                              .order_by(webhook_tokens.c.token)).all()
    assert [tuple(t) for t in tokens] == [("tok-2", "mailgun")], "expired tokens are swept"
    assert guard.claim("mailgun", "tok-1", "fp-b", now[0] + timedelta(hours=1)), \
        "an expired token may be used again"


def test_a_deferred_claim_that_fails_stores_nothing(database_url):
    engine = connect(database_url)
    first = DeferredReplay()
    assert first.claim("mailgun", "tok", "fp-a", NOW + timedelta(hours=12))
    take_in(engine, [event(provider="mailgun", event_id="m1")], RULES, received_at=NOW,
            replay=first)
    replayed = DeferredReplay()
    replayed.claim("mailgun", "tok", "fp-other", NOW + timedelta(hours=12))
    with pytest.raises(ReplayedRequest) as info:
        take_in(engine, [event(provider="mailgun", event_id="m2", raw={"evil": 1})], RULES,
                received_at=NOW, replay=replayed)
    assert info.value.status == 406
    assert [r.event_id for r in stored_events(engine)] == ["m1"]


def test_migration_0005_upgrades_a_database_holding_data(database_url):
    """From 0004 with subscribers and a send, to head: the data stays, the new tables work."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    engine = db._engine(db.normalize_url(database_url))
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    with begin_write(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004_web")
    assert "events" not in sa.inspect(engine).get_table_names()
    with engine.begin() as conn:
        now = NOW.replace(tzinfo=None) if conn.dialect.name == "sqlite" else NOW
        conn.execute(sa.text(
            "INSERT INTO subscribers (email, email_key, status, source, attributes, created_at,"
            " updated_at) VALUES ('jose@bücher.example', 'jose@bücher.example', 'active', "
            "'cli', '{}', :now, :now)"), {"now": now})
        conn.execute(sa.text(
            "INSERT INTO sends (week, content_hash, subject, provider, status, total, "
            "created_at, updated_at) VALUES ('2026-W47', 'abc', 'S', 'postmark', 'done', 1, "
            ":now, :now)"), {"now": now})
    engine = connect(database_url)  # migrates the rest of the way
    assert db.current_revision(engine) == db.head_revision()
    with engine.connect() as conn:
        sid = conn.execute(sa.text("SELECT id FROM subscribers")).scalar_one()
    take_in(engine, [event(recipient="jose@bücher.example")], RULES, received_at=NOW)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 1
        assert conn.execute(sa.text("SELECT email FROM subscribers WHERE id = :i"),
                            {"i": sid}).scalar() == "jose@bücher.example"
