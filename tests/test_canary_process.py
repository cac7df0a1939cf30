"""The canary and the brake with `newsletter send` as real processes against the fake
provider in a process of its own, the bounces coming back as signed Postmark webhooks on the
web app's route: a slice that bounces pauses the send before the rest is mailed; a healthy one
goes on after its wait; on PostgreSQL two senders share the slice and both stop."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from newsletter.config import load_config
from newsletter.store.db import normalize_url
from newsletter.store.tables import deliveries, sends
from tests import test_webhook_postmark as pm
from tests.process_helpers import (
    FakeProviderProcess,
    read_records,
    recorded_ids,
    run_newsletter,
    seed_subscribers,
    sender_env,
    start_send,
)
from tests.test_canary import post_webhooks, postmark_bounces

pytestmark = pytest.mark.slow
READERS = 60


def env_for(fake, database_url, **overrides):
    values = {"canary": 10, "canary_wait": 3600, "brake_min_events": 3, "batch_size": 4,
              "postmark_webhook_auth": pm.CREDENTIALS}
    return sender_env("postmark", fake.base_url, database_url, **{**values, **overrides})


def config_of(project, env):
    return load_config(project / "newsletter.toml",
                       environ={k: v for k, v in env.items() if k.startswith("NEWSLETTER_")})


def ledger(database_url):
    engine = sa.create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            send = conn.execute(sa.select(sends)).one()
            slice_ = set(conn.execute(sa.select(deliveries.c.subscriber_id)
                                      .where(deliveries.c.canary.is_(True))).scalars())
    finally:
        engine.dispose()
    return send, slice_


def test_a_slice_that_bounces_pauses_the_send_before_the_rest_is_mailed(
        project, database_url, tmp_path):
    seed_subscribers(database_url, READERS)
    with FakeProviderProcess(tmp_path / "fake.jsonl") as fake:
        env = env_for(fake, database_url)
        first = start_send(env, project, tmp_path / "logs").wait()
        assert first.returncode == 0, first.output
        assert "canary sent to 10; waiting for bounces and complaints until" in first.stdout
        send, slice_ = ledger(database_url)
        assert sorted(recorded_ids(read_records(fake.record))) == sorted(slice_)

        post_webhooks(config_of(project, env),
                      postmark_bounces(database_url, sorted(slice_)[:5]))
        second = start_send(env, project, tmp_path / "logs").wait()

        assert second.returncode == 1
        assert "error: paused: hard bounces 50.00% (5 of 10 sent)" in second.stderr
        assert len(read_records(fake.record)) == 10, "nobody past the slice was mailed"
        status = run_newsletter(["status", "--week", "2026-W47"], env, project,
                                tmp_path / "logs")
        assert "paused" in status.stdout and "--resume-paused" in status.stdout


def test_a_healthy_slice_goes_on_after_its_wait(project, database_url, tmp_path):
    seed_subscribers(database_url, READERS)
    with FakeProviderProcess(tmp_path / "fake.jsonl") as fake:
        env = env_for(fake, database_url, canary_wait=1)
        first = start_send(env, project, tmp_path / "logs").wait()
        assert first.returncode == 0 and "waiting" in first.stdout, first.output
        send, slice_ = ledger(database_url)
        # The wait's end is in the ledger: run again once it has passed.
        while datetime.now(UTC) <= send.canary_until:
            time.sleep(0.05)
        second = start_send(env, project, tmp_path / "logs").wait()

        assert second.returncode == 0, second.output
        got = [int(r["metadata"]["subscriber_id"]) for r in read_records(fake.record)]
        assert len(got) == READERS and len(set(got)) == READERS
        assert set(got[:10]) == slice_


@pytest.mark.postgres
def test_two_senders_on_postgresql_share_the_slice_and_both_stop_at_the_brake(
        project, postgres_url, tmp_path):
    seed_subscribers(postgres_url, 200)
    with FakeProviderProcess(tmp_path / "fake.jsonl", latency_ms=20) as fake:
        env = env_for(fake, postgres_url, canary=20, batch_size=2, concurrency=2)
        runs = [start_send(env, project, tmp_path / "logs") for _ in range(2)]
        for run in runs:
            run.wait()
            assert run.returncode == 0 and "waiting" in run.stdout, run.output
        send, slice_ = ledger(postgres_url)
        got = recorded_ids(read_records(fake.record))
        assert got == Counter({sid: 1 for sid in slice_}), "the slice exactly once, alone"

        post_webhooks(config_of(project, env), postmark_bounces(postgres_url,
                                                                sorted(slice_)[:4]))
        runs = [start_send(env, project, tmp_path / "logs") for _ in range(2)]
        for run in runs:  # one trips the brake; the other finds the send paused
            run.wait()
            assert run.returncode == 1 and "paused" in run.stderr, run.output
            assert "hard bounces 20.00% (4 of 20 sent)" in run.stderr, run.output
        assert len(read_records(fake.record)) == 20
