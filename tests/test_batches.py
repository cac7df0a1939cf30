"""A batch's identity: an unknown batch is repeated under its key with exactly its original
payload, whole, by one sender at a time, and only while the provider still remembers the key.
"""

import logging
import re
import threading
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.audience import changes
from newsletter.cli.main import cli
from newsletter.clock import utc_now
from newsletter.delivery import ledger
from newsletter.devtools.fake_provider import FakeProvider, Faults
from newsletter.store.db import connect
from newsletter.store.tables import deliveries
from newsletter.store.tables import subscribers as subscriber_table
from tests import ledger_helpers
from tests.seeding import readers, seed
from tests.sending import WEEK, make_config, send, states, stop_after_first_batch


@pytest.fixture
def fake():
    with FakeProvider(latency=0.002) as server:
        yield server


def leave_one_batch_unknown(project, database_url, fake, n=100):
    """A Resend send of one batch whose request was accepted, every answer lost, and the
    sender stopped before it could repeat it."""
    seed(database_url, readers(n))
    config = make_config(project, database_url, fake, provider="resend", batch_size=n)
    fake.faults = Faults(script="drop_after,drop_before,drop_before")
    stop = threading.Event()
    stop_after_first_batch(fake, stop)
    first = send(config, stop_event=stop)
    fake.on_accept = None
    assert first.stopped and first.counts == {"unknown": n}
    assert len(fake.records) == n
    return config


def test_a_repeat_after_the_list_changed_carries_the_original_payload(project, database_url,
                                                                      fake, caplog):
    config = leave_one_batch_unknown(project, database_url, fake)
    engine = connect(database_url)
    changes.unsubscribe_address(engine, "reader7@example.com")  # unsubscribed meanwhile
    with engine.begin() as conn:  # and another one renamed
        conn.execute(subscriber_table.update().where(subscriber_table.c.id == 3)
                     .values(name="Zoë Renamed"))
    caplog.set_level(logging.INFO, logger="newsletter.send")
    again = send(config)
    assert again.counts == {"sent": 100}, "the provider recognised its first answer"
    assert len(fake.records) == 100, "and sent nothing again"
    done = [tuple(map(int, m)) for m in re.findall(r"(\d+)/(\d+) done", caplog.text)]
    assert done and all(n <= total for n, total in done), done
    assert done[-1] == (100, 100)


def past_the_key_window(project, database_url, fake):
    config = leave_one_batch_unknown(project, database_url, fake)
    with connect(database_url).begin() as conn:
        conn.execute(sa.text("UPDATE batches SET created_at = :t"),
                     {"t": utc_now() - timedelta(hours=25)})
    return config


def resend_status(database_url):
    env = {"NEWSLETTER_DATABASE_URL": database_url, "NEWSLETTER_PROVIDER": "resend",
           "NEWSLETTER_SECRET_KEY": "s" * 32}
    return CliRunner().invoke(cli, ["status", "--week", WEEK], env=env).output


def test_an_unknown_batch_past_the_idempotency_window_is_found_in_the_sent_list(
        project, database_url, fake):
    config = past_the_key_window(project, database_url, fake)
    again = send(config)
    assert again.counts == {"sent": 100} and again.send.status == "done"
    assert len(fake.records) == 100, "not repeated: the provider forgot the key"
    assert "100 found accepted, 0 found not accepted" in resend_status(database_url)


def test_past_the_window_with_the_list_failing_it_is_a_plain_unknown(project, database_url,
                                                                      fake):
    config = past_the_key_window(project, database_url, fake)
    fake.faults = Faults(search_p500=1.0)
    again = send(config)
    assert again.counts == {"unknown": 100} and again.send.status == "done"
    assert len(fake.records) == 100, "not repeated: the provider forgot the key"
    out = resend_status(database_url)
    assert "100 recipient(s) may or may not have received it" in out
    assert f"newsletter send --week {WEEK} --reconcile` asks resend again" in out
    assert "`--retry-unknown` sends again (perhaps a second time)" in out


def test_a_repeat_that_gets_only_429s_stays_unknown_under_its_key(project, database_url,
                                                                  fake):
    config = leave_one_batch_unknown(project, database_url, fake, n=20)
    fake.faults = Faults(script="429,429,429", retry_after=0.001)
    result = send(config)
    assert result.counts == {"sent": 20}
    assert len(fake.records) == 20 and len({r.idempotency_key for r in fake.records}) == 1
    assert set(states(database_url).values()) == {"sent"}


@pytest.mark.postgres
def test_two_postgres_senders_never_split_one_key_between_them(postgres_url):
    """Many unknown batches, two senders claiming them at once: each key goes to one sender,
    with every row it carried."""
    engine = seed(postgres_url, readers(240))
    send_record, _ = ledger.open_send(engine, WEEK, "h" * 64, "Subject", "resend")
    setup = ledger_helpers.register_worker(engine, send_record.id)
    originals = {}
    while (claim := ledger.claim(engine, send_record.id, setup, 3)) is not None:
        originals[claim.batch_key] = sorted(r.id for r in claim.recipients)
    with engine.begin() as conn:  # every request's answer was lost
        conn.execute(deliveries.update().values(status="unknown", claimed_by=None,
                                                next_attempt_at=None))
    workers = [ledger_helpers.register_worker(engine, send_record.id) for _ in range(2)]
    barrier = threading.Barrier(2)
    taken: list[tuple[str, str, list[int]]] = []
    got: dict[str, bool] = {}

    def drain(worker_id: str) -> None:
        # In rounds, both claiming at the same instant, until neither finds anything.
        while True:
            barrier.wait()
            claim = ledger.claim_unknown(engine, send_record.id, worker_id, max_attempts=5)
            got[worker_id] = claim is not None
            if claim is not None:
                taken.append((worker_id, claim.batch_key,
                              sorted(r.id for r in claim.recipients)))
            barrier.wait()
            if not any(got.values()):
                return

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_key = Counter(key for _, key, _ in taken)
    assert set(per_key.values()) == {1}, "no key claimed twice"
    assert {key: ids for _, key, ids in taken} == originals, "each key whole"
    assert {w for w, _, _ in taken} == set(workers), "both senders took part"
    for worker_id in [setup, *workers]:
        ledger_helpers.unregister_worker(engine, worker_id)
