"""Stalls: a send that is sending and has not moved for ``stall_after`` seconds is found, says
what it waits for, is logged once by the worker, and shows in ``status`` and ``/metrics``."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.clock import utc_now
from newsletter.delivery import beats, ledger
from newsletter.delivery.stalls import find_stalls
from newsletter.store.tables import deliveries, send_workers, sends
from newsletter.web.metrics import Metrics
from newsletter.worker.housekeeping import StallWatch
from tests import ledger_helpers
from tests.seeding import seed

WEEK = "2026-W47"
STALL_AFTER = 600.0
LATER = timedelta(minutes=11)  # past stall_after, from the send's last change
READERS = ["josé@bücher.example", "zoë@straße.example", "rené@café.example",
           "ana@example.com", "łukasz@example.pl", "ümit@example.tr"]


@pytest.fixture
def send(database_url):
    engine = seed(database_url, READERS)
    record, _ = ledger.open_send(engine, WEEK, "h" * 64, "Five things ’this’ week", "postmark")
    yield engine, record
    engine.dispose()


def stalls(engine, after=LATER):
    return find_stalls(engine, stall_after=STALL_AFTER, now=utc_now() + after)


def beating(engine, send_id, at):
    worker = ledger_helpers.register_worker(engine, send_id)
    with engine.begin() as conn:
        conn.execute(send_workers.update().where(send_workers.c.id == worker)
                     .values(heartbeat_at=at))
    return worker


def test_a_send_that_moved_lately_is_not_stalled(send):
    engine, _ = send
    assert stalls(engine, after=timedelta(minutes=9)) == []


def test_a_send_nobody_runs_is_stalled_waiting_for_a_sender(send):
    engine, record = send
    [stall] = stalls(engine)
    assert stall.send_id == record.id and stall.week == WEEK
    assert stall.idle >= LATER - timedelta(seconds=5)
    assert "none is running it" in stall.waiting_for
    assert f"newsletter send --week {WEEK}" in stall.waiting_for
    assert stall.line().startswith(f"{WEEK}: send {record.id} stalled, no progress for 1")


def test_batches_left_with_the_provider_are_what_it_waits_for(send):
    engine, record = send
    worker = beating(engine, record.id, utc_now() + LATER)
    ledger.claim(engine, record.id, worker, 3)
    [stall] = stalls(engine)
    assert stall.waiting_for == "the provider to answer for 3 recipient(s)"


def test_retries_not_yet_due_are_what_it_waits_for(send):
    engine, record = send
    due = utc_now() + timedelta(hours=1)
    beating(engine, record.id, utc_now() + LATER)
    with engine.begin() as conn:
        conn.execute(deliveries.update().values(next_attempt_at=due))
    [stall] = stalls(engine)
    assert stall.waiting_for.startswith("retries of 6 recipient(s), the next due at ")


def test_neither_a_finished_send_nor_one_in_its_canary_wait_is_stalled(send):
    engine, record = send
    with engine.begin() as conn:
        conn.execute(sends.update().values(canary_until=utc_now() + timedelta(hours=1)))
    assert stalls(engine) == []
    with engine.begin() as conn:
        conn.execute(sends.update().values(canary_until=None, status="done"))
    assert stalls(engine) == []


def test_the_worker_logs_a_stall_once_and_again_after_it_moved(send, database_url, project,
                                                              caplog):
    from newsletter.config import load_config

    engine, record = send
    config = load_config(project / "newsletter.toml",
                         environ={"NEWSLETTER_DATABASE_URL": database_url})
    now = [utc_now() + LATER]
    watch = StallWatch(clock=lambda: now[0])
    caplog.set_level(logging.ERROR, logger="newsletter.worker")
    assert len(watch(config)) == 1
    assert watch(config) == [], "told once"
    [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"{WEEK}: send {record.id} stalled" in line.getMessage()
    assert not any("@" in r.getMessage() for r in caplog.records), "names no reader"

    with engine.begin() as conn:  # it moves, then stalls again
        conn.execute(deliveries.update().values(updated_at=now[0]))
    now[0] += LATER
    assert len(watch(config)) == 1


def age(engine, by=LATER):
    """The send's last change ``by`` ago."""
    then = utc_now() - by
    with engine.begin() as conn:
        conn.execute(deliveries.update().values(updated_at=then))
        conn.execute(sends.update().values(updated_at=then))


def test_status_shows_the_stall(send, database_url):
    engine, _ = send
    age(engine)
    env = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_PROVIDER": "postmark",
           "NEWSLETTER_SECRET_KEY": "s" * 32}
    result = CliRunner().invoke(cli, ["status", "--week", WEEK], env=env)
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.output.splitlines() if x.startswith("  stalled ")]
    assert "no progress for 11 min" in line and "none is running it" in line
    env["NEWSLETTER_STALL_AFTER"] = "3600"
    result = CliRunner().invoke(cli, ["status", "--week", WEEK], env=env)
    assert "stalled" not in result.output
    assert "last heartbeat" not in result.output, "no worker has beaten yet"

    beats.record(engine, beats.BeatName.WORKER, datetime(2026, 11, 16, 8, 0, 30, tzinfo=UTC))
    result = CliRunner().invoke(cli, ["status", "--week", WEEK], env=env)
    assert "  worker    last heartbeat 2026-11-16 08:00:30 UTC" in result.output.splitlines()


def test_metrics_count_the_stalled_sends(send):
    engine, _ = send
    metrics = Metrics("t" * 32, engine, stall_after=STALL_AFTER, clock=lambda: 0.0)
    assert b"newsletter_stalled_sends 0.0" in metrics.render()
    age(engine)
    fresh = Metrics("t" * 32, engine, stall_after=STALL_AFTER, clock=lambda: 0.0)
    assert b"newsletter_stalled_sends 1.0" in fresh.render()


def test_stall_after_must_be_positive(project):
    from newsletter.config import load_config
    from newsletter.errors import ConfigError

    with pytest.raises(ConfigError, match="'stall_after'"):
        load_config(project / "newsletter.toml", environ={"NEWSLETTER_STALL_AFTER": "0"})


def test_a_database_that_cannot_be_reached_is_one_warning(project, caplog):
    from newsletter.config import load_config

    config = load_config(project / "newsletter.toml", environ={
        "NEWSLETTER_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/newsletter"})
    caplog.set_level(logging.WARNING, logger="newsletter.worker")
    assert StallWatch()(config) == []
    assert "stall watch: not checked" in caplog.text and "Traceback" not in caplog.text


def test_a_live_sender_keeps_beating_and_stops_when_it_ends(send):
    """A sender running longer than stall_after still counts as running it (its heartbeat
    moves), so a stall it hits names what it waits for, not "no sender"; its end stops it."""
    import time

    from newsletter.delivery.ledger import senders

    engine, record = send
    sender = senders.register(engine, record, beat_every=0.01)
    started = heartbeat(engine, sender.worker_id)
    deadline = time.monotonic() + 10  # a bound on a hang, not the thing tested
    while heartbeat(engine, sender.worker_id) == started:
        assert time.monotonic() < deadline, "the sender never beat"
        time.sleep(0.01)
    senders.release(engine, sender)
    assert sender.stopped.is_set()
    with engine.connect() as conn:
        assert conn.execute(sa.select(send_workers)).all() == []


def heartbeat(engine, worker_id):
    with engine.connect() as conn:
        return conn.execute(sa.select(send_workers.c.heartbeat_at)
                            .where(send_workers.c.id == worker_id)).scalar_one()
