"""Unknown rows resolved by asking the provider: the ledger's side, on SQLite and PostgreSQL.

The provider here is a scripted ``Reconciler`` (the interface the transports implement), so
each rule is seen alone: found rows become sent with the provider's id, rows it has none of
go back to pending under no key (and the send opens again), an undecided row keeps its state
and says why, a failed search changes nothing, and only rows still unknown ever change.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from newsletter.delivery import ledger
from newsletter.delivery.ledger import reconciling
from newsletter.delivery.loop import Progress
from newsletter.delivery.reconcile import Reconciliation
from newsletter.delivery.reconcile_events import EventLogReconciler
from newsletter.delivery.states import DeliveryStatus, SendStatus
from newsletter.feedback.events import EventKind
from newsletter.providers.base import (
    Finding,
    LookupFailed,
    Outcome,
    OutcomeKind,
    UnknownBatch,
    Verdict,
    judge,
)
from newsletter.store.tables import batches, deliveries, events, sends
from tests import ledger_helpers
from tests.seeding import seed

WEEK = "2026-W47"
NAMES = ["zoë@bücher.example", "josé.núñez@correo.example", "ana@example.com",
         "łukasz@example.pl", "søren@example.dk", "mia@example.com"]


class Scripted:
    """A provider that answers from a table: subscriber id -> message id it accepted."""

    name = "scripted"

    def __init__(self, accepted: dict[int, str], *, settle=timedelta(0), fail=False):
        self.accepted = accepted
        self.settle = settle
        self.fail = fail
        self.asked: list[str] = []

    async def reconcile(self, batch: UnknownBatch, *, now: datetime) -> list[Finding]:
        self.asked.append(batch.key)
        if self.fail:
            raise LookupFailed("scripted", "search failed", status=503, body="busy")
        found = {i: (mid, {"id": mid}) for i, mid in self.accepted.items()}
        return judge(batch, found, settle=self.settle, now=now, where="the script")


def unknown_send(database_url, n=6, batch=3):
    """A send whose rows are all unknown, in batches of ``batch``."""
    engine = seed(database_url, NAMES[:n])
    send, _ = ledger.open_send(engine, WEEK, "h1", "Subject ’quoted’", "postmark")
    worker = ledger_helpers.register_worker(engine, send.id)
    while (claim := ledger.claim(engine, send.id, worker, batch)) is not None:
        ledger.record(engine, send.id, worker, claim,
                      [Outcome(r.id, OutcomeKind.UNKNOWN, reason="timed out")
                       for r in claim.recipients], max_attempts=3, retry_delay=0)
    ledger_helpers.unregister_worker(engine, worker)
    sends_done(engine, send.id)
    return engine, send


def sends_done(engine, send_id):
    with engine.begin() as conn:
        conn.execute(sends.update().where(sends.c.id == send_id)
                     .values(status=SendStatus.DONE))


def table(engine, send_id):
    with engine.connect() as conn:
        return {r.subscriber_id: r for r in conn.execute(
            sa.select(deliveries).where(deliveries.c.send_id == send_id))}


def reconcile(engine, send, reconciler):
    run = Reconciliation(reconciler, engine, send.id, "2026-W47.abc", "Subject ’quoted’")
    moved = asyncio.run(run.run_pass())
    return run, moved


def test_unknown_rows_come_in_their_batches_with_the_address_and_send_time(database_url):
    engine, send = unknown_send(database_url)
    found = reconciling.unknown_batches(engine, send.id, edition_key="k", subject="s",
                                        repeats=None, now=datetime.now(UTC))
    assert [len(b.rows) for b in found] == [3, 3]
    assert [r.email for r in found[0].rows] == NAMES[:3]
    assert len({b.key for b in found}) == 2 and all(b.sent_at.tzinfo for b in found)


def test_found_rows_are_sent_and_the_rest_go_again_under_no_key(database_url):
    engine, send = unknown_send(database_url)
    run, moved = reconcile(engine, send, Scripted({1: "pm-1", 2: "pm-2", 4: "pm-4"}))
    assert moved == {Verdict.ACCEPTED: 3, Verdict.NOT_ACCEPTED: 3}
    rows = table(engine, send.id)
    assert {i: r.status for i, r in rows.items()} == {
        1: "sent", 2: "sent", 3: "pending", 4: "sent", 5: "pending", 6: "pending"}
    assert rows[1].message_id == "pm-1" and rows[1].reconciled == "accepted"
    assert rows[1].error is None
    assert rows[3].reconciled == "not_accepted" and rows[3].batch_key is None
    # Rows to send again: the finished send is open again, for the next run.
    assert ledger.get_send(engine, send.id).status == SendStatus.SENDING
    assert reconciling.reconciled_counts(engine, send.id) == {"accepted": 3,
                                                              "not_accepted": 3}
    assert run.tally.summary("scripted").startswith(
        "reconciled with scripted: 3 found accepted, 3 found not accepted")


def test_too_soon_to_tell_stays_unknown_and_is_asked_again_once_settled(database_url):
    engine, send = unknown_send(database_url)
    now = datetime.now(UTC)
    provider = Scripted({1: "pm-1"}, settle=timedelta(minutes=5))
    run = Reconciliation(provider, engine, send.id, "k", "s", clock=lambda: now)
    moved = asyncio.run(run.run_pass())
    assert moved == {Verdict.ACCEPTED: 1}
    rows = table(engine, send.id)
    assert rows[2].status == "unknown" and "asked again after" in rows[2].error
    assert ledger.get_send(engine, send.id).status == SendStatus.DONE
    due = run.next_ask()
    assert due is not None and due > now + timedelta(minutes=4)
    # Nothing is asked again before it is due ...
    asyncio.run(run.run_pass())
    assert len(provider.asked) == 2
    # ... and once it is, the batches settle: what is still missing goes again.
    run.clock = lambda: now + timedelta(minutes=6)
    moved = asyncio.run(run.run_pass())
    assert moved == {Verdict.NOT_ACCEPTED: 5}
    assert run.next_ask() is None


def test_a_failed_search_changes_nothing_but_the_reason(database_url):
    engine, send = unknown_send(database_url)
    run, moved = reconcile(engine, send, Scripted({1: "x"}, fail=True))
    assert not moved
    rows = table(engine, send.id)
    assert {r.status for r in rows.values()} == {"unknown"}
    assert all("the search failed" in r.error and "HTTP 503" in r.error for r in rows.values())
    assert run.tally.failed_lookups == 2 and run.next_ask() is None


def test_only_rows_still_unknown_change(database_url):
    engine, send = unknown_send(database_url)
    found = reconciling.unknown_batches(engine, send.id, edition_key="k", subject="s",
                                        repeats=None, now=datetime.now(UTC))
    # Meanwhile another sender resolved subscriber 1 (sent again, say: it is pending now).
    with engine.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.subscriber_id == 1)
                     .values(status=DeliveryStatus.PENDING))
    findings = [Finding(r.subscriber_id, Verdict.ACCEPTED, f"id-{r.subscriber_id}")
                for r in found[0].rows]
    moved = reconciling.apply(engine, send.id, findings, now=datetime.now(UTC))
    assert moved == {Verdict.ACCEPTED: 2}
    rows = table(engine, send.id)
    assert rows[1].status == "pending" and rows[1].message_id is None


def test_progress_moves_resolved_rows_out_of_unknown():
    progress = Progress(total=10, done_before=4)   # 4 unknown from an earlier run
    progress.counts[DeliveryStatus.UNKNOWN] = 2    # and 2 from this one
    progress.counts[DeliveryStatus.SENT] = 4
    assert progress.finished == 10
    progress.resolve(accepted=3, reopened=2)
    assert progress.counts[DeliveryStatus.UNKNOWN] == 0
    assert progress.counts[DeliveryStatus.SENT] == 7
    assert progress.finished == 8   # the two reopened are open again


def _accepted_event(engine, send_id, subscriber_id, provider="sendgrid"):
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(events.insert().values(
            provider=provider, event_id=f"ev-{subscriber_id}", kind=EventKind.ACCEPTED,
            recipient=NAMES[subscriber_id - 1], reason="", code="",
            provider_message_id=f"sg-{subscriber_id}", message_id="", meta={}, raw="{}",
            occurred_at=now, received_at=now, subscriber_id=subscriber_id, send_id=send_id,
            matched_by="metadata"))


def test_the_event_log_finds_what_the_webhook_reported(database_url):
    engine, send = unknown_send(database_url)
    _accepted_event(engine, send.id, 2)
    log = EventLogReconciler("sendgrid", engine, send.id, settle=timedelta(0))
    run, moved = reconcile(engine, send, log)
    rows = table(engine, send.id)
    assert rows[2].status == "sent" and rows[2].message_id == "sg-2"
    # The first batch's other rows: an event heard for a later batch? None (2 is in the
    # first batch), so they are not taken as "not accepted".
    assert rows[1].status == "unknown" and "subscribed to 'processed'" not in rows[1].error
    assert rows[4].status == "unknown" and "'processed'" in rows[4].error
    assert moved == {Verdict.ACCEPTED: 1}


def test_the_event_log_proves_absence_only_once_later_batches_were_heard(database_url):
    engine, send = unknown_send(database_url)
    second = table(engine, send.id)[5].batch_key
    with engine.begin() as conn:  # the second batch was claimed a second after the first
        conn.execute(batches.update().where(batches.c.key == second)
                     .values(created_at=datetime.now(UTC) + timedelta(seconds=1)))
    _accepted_event(engine, send.id, 5)
    log = EventLogReconciler("sendgrid", engine, send.id, settle=timedelta(0))
    _, moved = reconcile(engine, send, log)
    rows = table(engine, send.id)
    assert rows[5].status == "sent"
    assert {rows[i].status for i in (1, 2, 3)} == {"pending"}
    assert moved[Verdict.NOT_ACCEPTED] == 3


def test_the_event_kind_is_spelled_alike_on_both_sides():
    assert EventKind.ACCEPTED.value == reconciling.ACCEPTED
