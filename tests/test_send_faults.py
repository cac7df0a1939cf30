"""A send that cannot hang, double-send or lie, whatever a batch runs into.

Per-recipient problems (a stored value no message can carry, one address twice in a batch)
fail that recipient only; anything else records the batch truthfully (``unknown`` when a
request may have left, otherwise back to ``pending``, not counted as an attempt) and stops the
send with one line. Every test runs under a guard that turns a hang into a failure.
"""

import dataclasses
import errno
import logging
import sqlite3
import threading
from collections import Counter

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import event

from newsletter.audience import lookup
from newsletter.cli.main import cli
from newsletter.delivery import ledger
from newsletter.devtools.fake_provider import FakeProvider, Faults
from newsletter.errors import NewsletterError
from newsletter.providers.eml import EmlTransport
from newsletter.store.db import connect
from newsletter.store.tables import subscribers
from tests.seeding import readers, seed
from tests.sending import WEEK, guarded, make_config, rows, send, send_until_done, states


@pytest.fixture
def fake():
    with FakeProvider(latency=0.002) as server:
        yield server


def set_name(database_url, subscriber_id, name):
    """A stored row from before today's input rules: written with SQL, past every check."""
    with connect(database_url).begin() as conn:
        conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id)
                     .values(name=name))


# -- per-recipient problems fail that recipient only ------------------------------------------

@pytest.mark.parametrize("provider", ["postmark", "sendgrid"])
@pytest.mark.parametrize("name", ["Eve\r\nBcc: all@example.com", "Eve\u2028Lee"])
def test_a_stored_name_no_header_can_carry_fails_that_recipient_only(project, database_url,
                                                                       fake, provider, name):
    seed(database_url, readers(30))
    set_name(database_url, 5, name)
    result = send_until_done(make_config(project, database_url, fake, provider=provider))
    assert result.counts == {"sent": 29, "failed": 1}
    assert result.send.status == "done"
    failed = rows(database_url)[5]
    assert failed.status == "failed" and ("reader5@example.com" in failed.error
                                          or "subscriber 5" in failed.error)
    received = [r.to for r in fake.records]
    assert len(received) == 29 and not any("reader5@" in to for to in received)


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun"])
def test_one_address_twice_in_a_content_once_batch_fails_only_the_second(project,
                                                                          database_url, fake,
                                                                          provider):
    # Two rows that look different but are one mailbox: the domain composed (ü) and
    # decomposed (u + combining diaeresis) have the same IDNA form.
    twins = ["jose@bücher.example", "jose@bu\u0308cher.example"]
    seed(database_url, readers(10) + twins)
    config = make_config(project, database_url, fake, provider=provider,
                         mailgun_domain="mg.example.com")
    result = send_until_done(config)
    assert result.counts == {"sent": 11, "failed": 1}
    failed = [row for row in rows(database_url).values() if row.status == "failed"]
    assert len(failed) == 1 and "twice" in failed[0].error
    assert sum("jose@xn--bcher-kva.example" in r.to.lower() for r in fake.records) == 1


# -- anything else: the batch recorded truthfully, the send stopped with one line -------------

@pytest.mark.parametrize("provider", ["postmark", "resend"])
def test_an_api_key_no_request_can_carry_stops_the_send_with_nothing_sent(project,
                                                                          database_url, fake,
                                                                          provider):
    seed(database_url, readers(100))
    config = dataclasses.replace(make_config(project, database_url, fake, provider=provider),
                                 provider_api_key="re_token_123456 ")
    result = send(config)
    assert result.aborted and "\n" not in str(result.stopped)
    assert "re_token_123456" not in str(result.stopped), "the key is never shown"
    assert result.counts == {"pending": 100} and not fake.records
    assert {(r.attempts, r.next_attempt_at) for r in rows(database_url).values()} == \
        {(0, None)}, "nothing was attempted: no attempt counted, no retry wait"


class FullDisk(EmlTransport):
    """The eml provider on a disk with room for ``room`` more messages."""

    def __init__(self, out_dir, room):
        super().__init__(out_dir)
        self.room = room

    async def send_batch(self, outgoing, recipients, *, batch_key):
        fits = recipients[:max(0, self.room)]
        self.room -= len(fits)
        results = await super().send_batch(outgoing, fits, batch_key=batch_key) if fits else []
        if len(fits) < len(recipients):
            raise OSError(errno.ENOSPC, "No space left on device")
        return results


def test_a_full_disk_under_eml_records_every_row_and_resumes_once_there_is_room(
        project, database_url, fake, tmp_path):
    seed(database_url, readers(240))
    config = make_config(project, database_url, fake, provider="eml")
    out = tmp_path / "out"
    first = send(config, transport=FullDisk(out, room=100))
    assert first.aborted and "No space left on device" in str(first.stopped)
    assert "in_flight" not in first.counts, "no row is left in flight"
    assert set(first.counts) <= {"sent", "unknown", "pending"}
    assert first.counts.get("unknown"), "the batch that hit the full disk may have left"
    again = send(config, transport=FullDisk(out, room=10_000))
    assert again.counts == {"sent": 240} and again.send.status == "done"
    assert len(list(out.glob("*.eml"))) == 240


def test_an_overflowing_retry_delay_still_records_the_answers(project, database_url, fake):
    seed(database_url, readers(40))
    fake.faults = Faults(script="slow_after", slow_seconds=1.5)  # the answer comes too late
    config = dataclasses.replace(make_config(project, database_url, fake),
                                 retry_delay=float("inf"))
    result = send(config)
    # Postmark's search then shows every message it took: found, not resent.
    assert result.counts == {"sent": 40} and result.send.status == "done"
    assert result.reconciled.accepted == 40 and len(fake.records) == 40


# -- a lost answer is never resent under a new key ----------------------------------------------

def test_a_lost_answer_then_429s_is_repeated_only_under_its_own_key(project, database_url,
                                                                    fake):
    seed(database_url, readers(30))
    # Accepted but the answer lost, then two 429s: the batch's outcome stays unknown.
    fake.faults = Faults(script="drop_after,429,429", retry_after=0.001)
    result = send_until_done(make_config(project, database_url, fake, provider="resend",
                                         batch_size=30))
    assert result.counts == {"sent": 30}
    assert Counter(fake.recipients()) == Counter(
        f"Reader {i - 1} <{e}>" for i, e in enumerate(readers(30), 1)), "everyone once"
    assert len({r.idempotency_key for r in fake.records}) == 1


# -- database trouble mid-send ------------------------------------------------------------------

def test_a_database_locked_past_the_busy_timeout_is_retried_and_nothing_is_lost(
        project, tmp_path, fake, caplog):
    database_url = f"sqlite:///{tmp_path / 'newsletter.db'}"
    engine = seed(database_url, readers(40))
    engine.dispose()
    event.listen(engine, "connect",
                 lambda dbapi, _: dbapi.execute("PRAGMA busy_timeout = 50"))
    other = sqlite3.connect(tmp_path / "newsletter.db", check_same_thread=False,
                            isolation_level=None)

    def lock_the_database(records) -> None:
        other.execute("BEGIN IMMEDIATE")  # the answer is on its way: hold the write lock
        fake.on_accept = None

    class ReleaseOnRetry(logging.Handler):
        def emit(self, record) -> None:
            if "database is busy" in record.getMessage() and other.in_transaction:
                other.execute("COMMIT")

    fake.on_accept = lock_the_database
    handler = ReleaseOnRetry()
    logging.getLogger("newsletter.send").addHandler(handler)
    caplog.set_level(logging.WARNING, logger="newsletter.send")
    try:
        config = make_config(project, database_url, fake, concurrency=1)
        result = send(config)
    finally:
        logging.getLogger("newsletter.send").removeHandler(handler)
        if other.in_transaction:
            other.execute("COMMIT")
        other.close()
    assert result.counts == {"sent": 40} and result.send.status == "done"
    assert len(fake.records) == 40
    busy = [r.getMessage() for r in caplog.records if "database is busy" in r.getMessage()]
    assert busy and all("\n" not in line for line in busy)


# -- an abort on the last batch, and resuming after an abort ------------------------------------

def test_an_error_rate_abort_on_the_last_batch_still_completes_the_send(project,
                                                                        database_url, fake):
    seed(database_url, [f"invalid{i}@example.com" for i in range(250)])
    config = make_config(project, database_url, fake, batch_size=250, max_error_rate="0.2")
    result = send(config)
    assert result.counts == {"failed": 250}
    assert result.send.status == "done", "nothing was left to stop"
    env = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_SECRET_KEY": "s" * 32}
    out = CliRunner().invoke(cli, ["status", "--week", WEEK], env=env).output
    assert f"{WEEK}  done  250 recipient(s)" in out


def test_an_aborted_send_says_aborted_once(project, database_url, fake):
    seed(database_url, readers(10))
    fake.faults = Faults(bad_token="re_token_123456")
    assert send(make_config(project, database_url, fake)).aborted
    env = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_SECRET_KEY": "s" * 32}
    out = CliRunner().invoke(cli, ["status", "--week", WEEK], env=env).output
    assert f"{WEEK}  aborted  10 recipient(s)" in out
    assert out.count("aborted") == 1, out
    assert "credentials refused" in out


def test_after_a_fatal_abort_the_rows_never_attempted_are_due_at_once(project, database_url,
                                                                      fake):
    engine = seed(database_url, readers(8))
    fake.faults = Faults(bad_token="re_token_123456")
    config = make_config(project, database_url, fake, retry_delay=3600, batch_size=2)
    assert send(config).aborted
    assert {(r.status, r.attempts, r.next_attempt_at) for r in rows(database_url).values()} \
        == {("pending", 0, None)}
    fake.faults = Faults()
    result = send(config)  # a retry_delay wait would take an hour: the guard would fail it
    assert result.counts == {"sent": 8}
    assert lookup.get(engine, "reader1@example.com").status == "active"
    assert set(states(database_url).values()) == {"sent"}


def test_no_row_is_ever_left_in_flight_by_a_batch_that_raised(project, database_url, fake):
    """A transport bug after its request left: unknown, reported, and the send stops."""
    seed(database_url, readers(20))

    class Broken(EmlTransport):
        idempotent = False

        async def send_batch(self, outgoing, recipients, *, batch_key):
            await super().send_batch(outgoing, recipients, batch_key=batch_key)
            raise KeyError("surprise")

    config = make_config(project, database_url, fake, provider="eml", batch_size=5)
    result = send(config, transport=Broken(project / "outbox"))
    assert result.aborted and "KeyError" in str(result.stopped)
    assert "in_flight" not in result.counts and result.counts.get("unknown")
    with connect(database_url).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM deliveries WHERE status = 'in_flight'")
                            ).scalar() == 0


def test_a_stop_request_waits_for_the_batches_in_flight(project, database_url, fake):
    seed(database_url, readers(200))
    stop = threading.Event()

    def on_accept(records) -> None:
        stop.set()

    fake.on_accept = on_accept
    result = send(make_config(project, database_url, fake, batch_size=20, concurrency=2),
                  stop_event=stop)
    assert result.stopped and not result.aborted
    assert set(result.counts) == {"sent", "pending"} and result.counts["sent"] <= 40


@pytest.mark.parametrize("base_url", ["https://news.example/\r\nBcc: all@example.com",
                                      "https://news.example/\u2028x"])
def test_a_fault_every_message_shares_refuses_the_send_before_anything_is_recorded(
        project, database_url, fake, base_url):
    seed(database_url, readers(5))
    config = dataclasses.replace(make_config(project, database_url, fake), base_url=base_url)
    with pytest.raises(NewsletterError) as err:
        send(config)
    assert "\n" not in str(err.value)
    assert ledger.find_send(connect(database_url), WEEK) is None, "the week is not used up"
    assert not fake.records


def test_a_second_signal_gives_up_waiting_for_the_database(project, tmp_path):
    """Recording is retried while the database says "locked"; the operator's second Ctrl-C
    ends the wait (those rows then count as unknown on the next run)."""
    import asyncio
    import signal

    from newsletter.audience.recipient import Recipient
    from newsletter.config import load_config
    from newsletter.delivery.loop import Delivery
    from newsletter.delivery.trial import MemoryBook
    from newsletter.edition.render import render_week
    from newsletter.message.outgoing import prepare

    config = load_config(project / "newsletter.toml", environ={})
    outgoing = prepare(config, render_week(config, WEEK))
    running = {}

    class LockedBook(MemoryBook):
        def record(self, claim, outcomes):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 1:  # the operator presses Ctrl-C twice
                for _ in range(2):
                    running["loop"].call_soon_threadsafe(delivery._on_signal, signal.SIGINT)
            raise sqlite3.OperationalError("database is locked")

        def is_transient(self, exc):
            return "locked" in str(exc)

    book = LockedBook([Recipient(1, "zoë@bücher.example", "Zoë")], batch_size=10)
    delivery = Delivery(config, EmlTransport(tmp_path), outgoing, book)

    async def run():
        running["loop"] = asyncio.get_running_loop()
        return await delivery.run()

    _, stopped = guarded(asyncio.run, run())
    assert stopped.kind == "aborted" and "could not be recorded" in stopped.detail
    assert book.calls >= 1 and not book.outcomes
