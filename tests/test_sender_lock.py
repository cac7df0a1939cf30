"""Who is sending: a lock the operating system (or PostgreSQL) releases when the process dies,
never a heartbeat that a paused process stops writing.

On SQLite, ``<database>-send-lock`` is held with an exclusive ``flock`` for the whole run: a
sender stopped for minutes (SIGSTOP, a laptop lid) is still in progress; a killed one is gone
at once. On PostgreSQL each sender holds a session advisory lock on its own connection.
"""

import os
import signal
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from newsletter.clock import utc_now
from newsletter.delivery import ledger
from newsletter.devtools.fake_provider import FakeProvider
from newsletter.store.db import connect
from newsletter.store.tables import deliveries, send_workers
from tests import ledger_helpers
from tests.process_helpers import WEEK, sender_env, start_send, stop_process
from tests.seeding import readers, seed
from tests.sending import make_config, send, states


def first_accept(fake) -> threading.Event:
    accepted = threading.Event()
    fake.on_accept = lambda records: accepted.set()
    return accepted


@pytest.mark.slow
def test_a_sender_paused_for_minutes_is_still_in_progress(project, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'newsletter.db'}"
    seed(database_url, readers(60))
    with FakeProvider(latency=0.05) as fake:
        accepted = first_accept(fake)
        env = sender_env("postmark", fake.base_url, database_url, batch_size=10,
                         concurrency=1)
        child = start_send(env, project, tmp_path / "logs")
        try:
            assert accepted.wait(60), child.wait().output
            os.kill(child.proc.pid, signal.SIGSTOP)
            with connect(database_url).begin() as conn:  # as if paused for ten minutes
                conn.execute(send_workers.update().values(
                    heartbeat_at=utc_now() - timedelta(minutes=10)))
            config = make_config(project, database_url, fake)
            with pytest.raises(ledger.AlreadyInProgress,
                               match=rf"already in progress \(pid {child.proc.pid} on "):
                send(config)
            os.kill(child.proc.pid, signal.SIGCONT)
            assert child.wait().returncode == 0, child.output
        finally:
            if child.proc.poll() is None:
                os.kill(child.proc.pid, signal.SIGCONT)
            stop_process(child.proc)
        assert len(fake.records) == 60 and len(set(fake.recipients())) == 60
    assert set(states(database_url).values()) == {"sent"}


@pytest.mark.slow
def test_a_killed_sender_releases_its_lock_at_once(project, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'newsletter.db'}"
    seed(database_url, readers(60))
    with FakeProvider(latency=0.05) as fake:
        accepted = first_accept(fake)
        env = sender_env("postmark", fake.base_url, database_url, batch_size=10,
                         concurrency=1)
        child = start_send(env, project, tmp_path / "logs")
        try:
            assert accepted.wait(60), child.wait().output
            os.kill(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
        finally:
            stop_process(child.proc)
        fake.on_accept = None
        left = {sid for sid, s in states(database_url).items() if s == "in_flight"}
        assert left, "the kill left a batch with the provider"
        result = send(make_config(project, database_url, fake))
    assert not result.stopped
    # The next sender started at once, and asked Postmark about the batch left with it.
    assert set(states(database_url).values()) == {"sent"}
    assert sorted(fake.recipients()) == sorted(set(fake.recipients())), "nobody twice"
    assert len(fake.recipients()) == 60


@pytest.mark.postgres
def test_a_postgres_sender_that_stopped_beating_keeps_its_rows_while_it_lives(postgres_url):
    engine = seed(postgres_url, readers(6))
    record, _ = ledger.open_send(engine, WEEK, "h" * 64, "Subject", "postmark")
    paused = ledger_helpers.register_worker(engine, record.id)
    ledger.claim(engine, record.id, paused, 3)
    with engine.begin() as conn:
        conn.execute(send_workers.update().values(
            heartbeat_at=utc_now() - timedelta(minutes=10)))
    other = ledger_helpers.register_worker(engine, record.id)
    ledger.recover(engine, record.id)

    def in_flight() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(deliveries)
                                .where(deliveries.c.status == "in_flight")).scalar()

    assert in_flight() == 3, "a live sender's rows are never taken from it"
    ledger_helpers.abandon_worker(paused)  # its connection closes, as when the process dies
    # The server drops the session's lock once it has seen the connection go: ask until then,
    # as a sender looking for work does.
    for _ in range(500):
        ledger.recover(engine, record.id)
        if in_flight() == 0:
            break
        time.sleep(0.01)
    assert in_flight() == 0
    ledger_helpers.unregister_worker(engine, other)
