"""The brake: its arithmetic on its own (thresholds, minimum samples, the canary as the
sample), the figures it reads from the event log (hard bounces and complaints of this send,
each subscriber once; provider suppression echoes and other sends left out), and the
migration that brings the paused state and the canary columns to a database with data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from newsletter.delivery import ledger
from newsletter.delivery.brake import Figures, Thresholds, judge
from newsletter.delivery.gate import GateCheck, Go, Rules
from newsletter.delivery.ledger.book import LedgerBook
from newsletter.delivery.ledger.figures import figures
from newsletter.store import db
from newsletter.store.tables import deliveries, events, sends
from tests import ledger_helpers
from tests.seeding import readers, seed

DEFAULTS = Thresholds()


pytestmark = pytest.mark.usefixtures("engines_disposed")


def test_the_defaults_pause_at_five_percent_bounces_once_a_thousand_are_sent():
    assert judge(Figures(sent=1000, bounced=49), DEFAULTS) is None
    reason = judge(Figures(sent=1000, bounced=50), DEFAULTS)
    assert reason == ("the brake: hard bounces 5.00% (50 of 1,000 sent) reached "
                      "brake_bounce_rate 5.00%")


def test_complaints_pause_at_three_in_a_thousand_with_ten_of_them():
    assert judge(Figures(sent=3000, complained=9), DEFAULTS) is None      # 0.3 %, 9 events
    assert judge(Figures(sent=4000, complained=11), DEFAULTS) is None     # 0.275 %
    assert "complaints 0.33% (10 of 3,000 sent)" in judge(Figures(sent=3000, complained=10),
                                                          DEFAULTS)


def test_a_small_sample_never_trips_it():
    assert judge(Figures(sent=999, bounced=500), DEFAULTS) is None        # under 1,000 sent
    assert judge(Figures(sent=5000, bounced=9), Thresholds(bounce_rate=0.001)) is None


def test_the_canary_slice_is_the_sample_when_smaller():
    assert judge(Figures(sent=99, bounced=20), DEFAULTS, canary_size=100) is None
    assert judge(Figures(sent=100, bounced=10), DEFAULTS, canary_size=100) is not None
    assert judge(Figures(sent=100, bounced=9), DEFAULTS, canary_size=100) is None


def test_both_limits_are_named_and_zero_turns_one_off():
    both = judge(Figures(sent=1000, bounced=100, complained=10), DEFAULTS)
    assert "hard bounces 10.00%" in both and "complaints 1.00%" in both
    no_bounces = Thresholds(bounce_rate=0)
    assert judge(Figures(sent=1000, bounced=1000), no_bounces) is None
    assert Thresholds(bounce_rate=0, complaint_rate=0).off and not DEFAULTS.off


def test_the_figures_line_reads_well():
    assert Figures(sent=1200, bounced=1, complained=0).line() == \
        "1 hard bounce (0.1%), 0 complaints (0.00%) of 1,200 sent"


# -- the figures, from the event log ------------------------------------------------------

NOW = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)


def add_send(conn, week: str, sent: int, total: int) -> int:
    send_id = conn.execute(sends.insert().values(
        week=week, content_hash="c" * 64, subject="José’s “notes” 🎉", provider="postmark",
        status="sending", total=total, created_at=NOW, updated_at=NOW)).inserted_primary_key[0]
    conn.execute(deliveries.insert(), [
        {"send_id": send_id, "subscriber_id": i, "status": "sent" if i <= sent else "pending",
         "attempts": 1, "updated_at": NOW + timedelta(minutes=i), "message_id": f"m{i}"}
        for i in range(1, total + 1)])
    return send_id


def add_event(conn, send_id, subscriber_id, kind, n=[0]):  # noqa: B006 (a counter)
    n[0] += 1
    conn.execute(events.insert().values(
        provider="postmark", event_id=f"e{n[0]}", kind=kind, recipient=f"r{subscriber_id}@x.de",
        reason="", code="", provider_message_id="", message_id="", meta={}, raw="{}",
        occurred_at=NOW, received_at=NOW, subscriber_id=subscriber_id, send_id=send_id,
        matched_by="message_id"))


def test_figures_count_this_sends_hard_bounces_and_complaints_once_each(database_url):
    engine = db.connect(database_url)
    with engine.begin() as conn:
        mine = add_send(conn, "2026-W47", sent=20, total=30)
        other = add_send(conn, "2026-W46", sent=30, total=30)
        for sid in (1, 1, 2, 3):                  # subscriber 1 bounced twice: counted once
            add_event(conn, mine, sid, "bounced")
        for sid in (4, 5, 6, 7, 8):               # already suppressed: no new bounces
            add_event(conn, mine, sid, "rejected")
        add_event(conn, mine, 9, "complained")
        add_event(conn, mine, 10, "deferred")
        add_event(conn, other, 11, "bounced")     # another send's
        add_event(conn, None, 12, "bounced")      # matched to no send
    with engine.connect() as conn:
        assert figures(conn, mine) == Figures(sent=20, bounced=3, complained=1)
        # Since a resume: only messages recorded as sent from then on, and their events.
        since = NOW + timedelta(minutes=2, seconds=30)
        assert figures(conn, mine, since) == Figures(sent=18, bounced=1, complained=1)


def mark_sent(engine, send_id, upto):
    with engine.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.send_id == send_id,
                                               deliveries.c.subscriber_id <= upto)
                     .values(status="sent"))


def bounce(engine, send_id, ids):
    with engine.begin() as conn:
        for sid in ids:
            add_event(conn, send_id, sid, "bounced")


def test_a_large_send_is_braked_on_exact_figures_without_a_count_before_every_batch(
        database_url):
    engine = seed(database_url, readers(6500))
    with engine.begin() as conn:
        send_id = add_send(conn, "2026-W47", sent=4000, total=6500)
    worker = ledger_helpers.register_worker(engine, send_id)
    book = LedgerBook(engine, ledger.get_send(engine, send_id), worker, batch_size=100,
                      max_attempts=3, retry_delay=0, idempotent=False)
    gate = GateCheck(book, Rules(DEFAULTS), clock=lambda: NOW)
    bounce(engine, send_id, range(1, 151))                  # 3.75 % of 4,000
    assert gate.verdict() == Go() and book.tally.value == 4000

    # 250 bounces are 6.25 % of the 4,000 last counted, but 4.17 % of the 6,000 sent by now:
    # the stale figure only prompts a count, and the send goes on.
    book.claim()
    mark_sent(engine, send_id, 6000)
    bounce(engine, send_id, range(151, 251))
    assert gate.verdict() == Go() and book.tally.value == 6000
    for _ in range(2):                                      # 200 claimed: under 6,000 / 20
        book.claim()
        assert gate.verdict() == Go()
    assert book.tally.value == 6000, "not counted again before a twentieth more is claimed"

    mark_sent(engine, send_id, 6300)
    book.claim()
    assert gate.verdict() == Go()
    assert book.tally.value == 6300, "counted again once 300 more were claimed"

    bounce(engine, send_id, range(251, 321))               # 320 of 6,300: 5.08 %
    stopped = gate.verdict()
    assert stopped.reason.kind == "paused"
    assert str(stopped.reason).endswith("hard bounces 5.08% (320 of 6,300 sent) reached "
                                        "brake_bounce_rate 5.00%")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sends.c.status).where(sends.c.id == send_id)
                            ).scalar_one() == "paused"
    ledger_helpers.unregister_worker(engine, worker)


def test_the_migration_brings_paused_and_the_canary_to_a_database_with_data(database_url):
    """Upgrade from 0005 with sends, deliveries and events in place: every row kept, the new
    columns at their defaults, and the new state accepted by the constraint."""
    from tests.test_migration_delivery import upgrade_to

    engine = db._engine(db.normalize_url(database_url))  # as the delivery migration test does
    upgrade_to(engine, "0005_events")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO sends (week, content_hash, subject, provider, status, total, "
            "created_at, updated_at) VALUES ('2026-W47', 'abc', 'Jos\u00e9', 'postmark', "
            "'sending', 2, :t, :t)"), {"t": NOW})
        send_id = conn.execute(sa.text("SELECT id FROM sends")).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO deliveries (send_id, subscriber_id, status, attempts, updated_at) "
            "VALUES (:s, 1, 'sent', 1, :t), (:s, 2, 'pending', 0, :t)"), {"s": send_id, "t": NOW})
        conn.execute(sa.text(
            "INSERT INTO events (provider, event_id, kind, recipient, reason, code, "
            "provider_message_id, message_id, meta, raw, occurred_at, received_at, "
            "subscriber_id, send_id, matched_by) VALUES ('postmark', 'e1', 'bounced', "
            "'a@b.de', '', '', '', '', '{}', '{}', :t, :t, 1, :s, 'address')"),
            {"s": send_id, "t": NOW})
    upgrade_to(engine, "head")
    with engine.begin() as conn:
        row = conn.execute(sa.text("SELECT status, canary_size, canary_until, forced, "
                                   "brake_since FROM sends")).one()
        assert tuple(row) == ("sending", 0, None, None, None)
        assert conn.execute(sa.text("SELECT count(*) FROM deliveries WHERE canary = :f"),
                            {"f": False}).scalar_one() == 2
        assert conn.execute(sa.text("SELECT send_id FROM events")).scalar_one() == send_id
        conn.execute(sa.text("UPDATE sends SET status = 'paused'"))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("UPDATE sends SET status = 'resting'"))
