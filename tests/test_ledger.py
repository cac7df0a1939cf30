"""The delivery ledger's rules, on SQLite and PostgreSQL."""

import os
import time

import pytest
import sqlalchemy as sa

from newsletter.audience import changes, lookup, subscribers
from newsletter.delivery import ledger
from newsletter.store.tables import deliveries, send_workers
from tests import ledger_helpers
from tests.seeding import readers, seed

WEEK = "2026-W47"


def open_week(engine, content_hash="h1"):
    return ledger.open_send(engine, WEEK, content_hash, "Subject", "postmark")


def states(engine, send_id) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(deliveries.c.subscriber_id, deliveries.c.status)
                                 .where(deliveries.c.send_id == send_id)).all())


def test_starting_a_send_freezes_its_recipients(database_url):
    engine = seed(database_url, readers(5))
    seed(database_url, ["pending@example.com"], status="pending")
    send, created = open_week(engine)
    assert created and send.total == 5
    seed(database_url, ["late@example.com"])
    again, created = open_week(engine)
    assert not created and again.id == send.id and again.total == 5
    assert len(states(engine, send.id)) == 5


def test_changed_content_is_not_sent_under_the_same_week(database_url):
    engine = seed(database_url, readers(2))
    open_week(engine, "h1")
    with pytest.raises(ledger.SendError, match="with other content"):
        open_week(engine, "h2")


def test_claims_take_pending_rows_in_order_and_skip_those_who_left(database_url):
    engine = seed(database_url, readers(6))
    send, _ = open_week(engine)
    changes.unsubscribe_address(engine, "reader2@example.com")
    worker = ledger_helpers.register_worker(engine, send.id)
    first = ledger.claim(engine, send.id, worker, 3)
    assert [r.email for r in first.recipients] == ["reader1@example.com", "reader3@example.com"]
    assert first.skipped == 1
    second = ledger.claim(engine, send.id, worker, 10)
    assert [r.id for r in second.recipients] == [4, 5, 6]
    assert ledger.claim(engine, send.id, worker, 10) is None
    assert states(engine, send.id) == {1: "in_flight", 2: "skipped", 3: "in_flight",
                                       4: "in_flight", 5: "in_flight", 6: "in_flight"}


def record(engine, send, worker, claim, outcomes, **options):
    """Record as a sender with an idempotent provider (unknown batches are repeated)."""
    options = {"max_attempts": 3, "retry_delay": 0, "repeats": ledger.Repeats(5), **options}
    return ledger.record(engine, send.id, worker, claim, outcomes, **options)


def test_recording_moves_rows_to_their_outcome(database_url):
    engine = seed(database_url, readers(5))
    send, _ = open_week(engine)
    worker = ledger_helpers.register_worker(engine, send.id)
    claim = ledger.claim(engine, send.id, worker, 5)
    final = record(engine, send, worker, claim, [
        ledger.Outcome(1, "sent", message_id="m1"),
        ledger.Outcome(2, "failed", code="406", reason="inactive", bad_address=True),
        ledger.Outcome(3, "retry", code="429", reason="slow down"),
        ledger.Outcome(4, "unknown", reason="timeout"),
        ledger.Outcome(5, "untried", reason="not sent: the send stopped"),
    ], retry_delay=60, repeats=None)  # no idempotency: an unknown row is final
    assert states(engine, send.id) == {1: "sent", 2: "failed", 3: "pending", 4: "unknown",
                                       5: "pending"}
    assert final == {"sent": 1, "failed": 1, "unknown": 1}, "what is final, for progress"
    with engine.connect() as conn:
        untried = conn.execute(sa.select(deliveries).where(deliveries.c.subscriber_id == 5)
                               ).one()
    assert (untried.attempts, untried.next_attempt_at) == (0, None), "not an attempt"
    assert lookup.get(engine, "reader2@example.com").status == "bounced"
    assert ledger.next_due(engine, send.id) is not None, "the retry waits for its time"
    again = ledger.claim(engine, send.id, worker, 10)
    assert [r.id for r in again.recipients] == [5], "the retry is not due yet; untried is"


def test_a_transient_error_becomes_final_after_max_attempts(database_url):
    engine = seed(database_url, readers(1))
    send, _ = open_week(engine)
    worker = ledger_helpers.register_worker(engine, send.id)
    for _ in range(2):
        claim = ledger.claim(engine, send.id, worker, 1)
        record(engine, send, worker, claim, [ledger.Outcome(1, "retry", reason="503")],
               max_attempts=2)
    with engine.connect() as conn:
        row = conn.execute(sa.select(deliveries)).one()
    assert row.status == "failed" and row.error == "gave up after 2 attempts: 503"


def test_rows_left_in_flight_by_a_dead_process_become_unknown(database_url):
    engine = seed(database_url, readers(3))
    send, _ = open_week(engine)
    worker = ledger_helpers.register_worker(engine, send.id)
    ledger.claim(engine, send.id, worker, 2)
    ledger_helpers.abandon_worker(worker)  # its lock goes with it, its records stay
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(send_workers)).scalar() == 1
    ledger_helpers.register_worker(engine, send.id)
    # PostgreSQL drops a closed session's lock once it has seen the connection go: a sender
    # looking for work asks again, as here.
    for _ in range(500):
        if states(engine, send.id)[1] == "unknown":
            break
        ledger.recover(engine, send.id)
        time.sleep(0.01)
    assert states(engine, send.id) == {1: "unknown", 2: "unknown", 3: "pending"}


def test_a_second_sqlite_sender_is_refused_while_the_first_lives(tmp_path):
    engine = seed(f"sqlite:///{tmp_path / 'n.db'}", readers(2))
    send, _ = open_week(engine)
    ledger_helpers.register_worker(engine, send.id)
    with pytest.raises(ledger.AlreadyInProgress, match=f"already in progress \\(pid {os.getpid()}"):
        ledger_helpers.register_worker(engine, send.id)


@pytest.mark.postgres
def test_postgres_senders_share_a_send_without_overlap(postgres_url):
    engine = seed(postgres_url, readers(10))
    send, _ = open_week(engine)
    a = ledger_helpers.register_worker(engine, send.id)
    b = ledger_helpers.register_worker(engine, send.id)
    first = ledger.claim(engine, send.id, a, 6)
    second = ledger.claim(engine, send.id, b, 6)
    ids_a = {r.id for r in first.recipients}
    ids_b = {r.id for r in second.recipients}
    assert not ids_a & ids_b and len(ids_a | ids_b) == 10


def test_unknown_batches_are_reclaimed_whole_under_their_key(database_url):
    engine = seed(database_url, readers(5))
    send, _ = open_week(engine)
    worker = ledger_helpers.register_worker(engine, send.id)
    claim = ledger.claim(engine, send.id, worker, 3)
    record(engine, send, worker, claim,
           [ledger.Outcome(r.id, "unknown") for r in claim.recipients])
    again = ledger.claim_unknown(engine, send.id, worker, max_attempts=5)
    assert again.batch_key == claim.batch_key and again.repeat
    assert again.recipients == claim.recipients, "exactly what the first request carried"


def test_a_repeat_that_is_not_answered_stays_unknown_under_its_key(database_url):
    engine = seed(database_url, readers(2))
    send, _ = open_week(engine)
    worker = ledger_helpers.register_worker(engine, send.id)
    claim = ledger.claim(engine, send.id, worker, 2)
    record(engine, send, worker, claim, [ledger.Outcome(r.id, "unknown")
                                         for r in claim.recipients])
    repeat = ledger.claim_unknown(engine, send.id, worker, max_attempts=5)
    record(engine, send, worker, repeat, [ledger.Outcome(1, "retry", reason="429"),
                                          ledger.Outcome(2, "untried", reason="stopped")])
    assert states(engine, send.id) == {1: "unknown", 2: "unknown"}
    again = ledger.claim_unknown(engine, send.id, worker, max_attempts=5)
    assert again.batch_key == claim.batch_key, "still the same key"


def test_an_unknown_batch_past_its_window_is_not_repeated(database_url):
    from datetime import timedelta

    from newsletter.clock import utc_now
    from newsletter.store.tables import batches

    engine = seed(database_url, readers(2))
    send, _ = open_week(engine)
    worker = ledger_helpers.register_worker(engine, send.id)
    claim = ledger.claim(engine, send.id, worker, 2)
    record(engine, send, worker, claim, [ledger.Outcome(r.id, "unknown")
                                         for r in claim.recipients])
    with engine.begin() as conn:
        conn.execute(batches.update().values(created_at=utc_now() - timedelta(hours=23,
                                                                             minutes=1)))
    window = timedelta(hours=24)  # less the safety margin of an hour: already past
    assert ledger.claim_unknown(engine, send.id, worker, max_attempts=5, window=window) is None
    assert ledger.open_rows(engine, send.id, ledger.Repeats(5, window)) == 0
    assert ledger.claim_unknown(engine, send.id, worker, max_attempts=5) is not None, \
        "a provider that never forgets (eml) repeats it"


def test_requeue_puts_unknown_or_failed_back(database_url):
    engine = seed(database_url, readers(2))
    send, _ = open_week(engine)
    worker = ledger_helpers.register_worker(engine, send.id)
    claim = ledger.claim(engine, send.id, worker, 2)
    record(engine, send, worker, claim, [ledger.Outcome(1, "unknown"),
                                         ledger.Outcome(2, "failed", code="300")])
    assert ledger.requeue(engine, send.id, "unknown") == 1
    assert states(engine, send.id) == {1: "pending", 2: "failed"}
    assert ledger.requeue(engine, send.id, "failed") == 1
    assert states(engine, send.id) == {1: "pending", 2: "pending"}


def test_erasing_a_subscriber_keeps_the_ledger_consistent(database_url):
    engine = seed(database_url, readers(2))
    send, _ = open_week(engine)
    assert subscribers.remove(engine, "reader1@example.com")
    worker = ledger_helpers.register_worker(engine, send.id)
    claim = ledger.claim(engine, send.id, worker, 5)
    assert [r.id for r in claim.recipients] == [2] and claim.skipped == 1
