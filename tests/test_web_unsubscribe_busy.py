"""One-click while another writer holds the database: a quick 503 with Retry-After, nothing
recorded and nothing claimed, and the mail client's retry after the lock is gone succeeds."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from newsletter.audience import subscribers
from newsletter.audience.tokens import make_token
from newsletter.store.db import connect
from tests.web_helpers import (
    SECRET,
    Clock,
    field,
    main_text,
    make_app,
    row,
    web_client,
    web_config,
)

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
# Safety net only: the old code kept a one-click waiting 20 s for the lock (and then failed),
# PostgreSQL's forever. An answer that does not come within this long is a hang.
NO_HANG = 15

NAMES = ["José “Pepe” Ñandú", "Zoë Ångström", "Søren Ødegård", "Małgorzata Żółć"]


@contextmanager
def locked(database_url: str, engine: sa.Engine) -> Iterator[None]:
    """Another writer holding the lock every write needs, until the block ends."""
    if database_url.startswith("sqlite"):
        other = sqlite3.connect(sa.make_url(database_url).database, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    with engine.connect() as other:
        # Readers go on; every INSERT, UPDATE and DELETE on the table waits (an import does
        # much the same to the rows it rewrites).
        other.exec_driver_sql("LOCK TABLE subscribers IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            other.rollback()


@pytest.fixture
def site(project, database_url):
    config = web_config(project, database_url)
    engine = connect(database_url)
    subs = [subscribers.add(engine, f"reader{i}@bücher.example", name=name)
            for i, name in enumerate(NAMES)]
    app = make_app(config, Clock(), engine=engine)
    paths = [f"/unsubscribe/{make_token(SECRET, 'unsubscribe', s.id)}" for s in subs]
    with web_client(app, follow_redirects=False) as client:
        yield client, engine, subs, paths


def answers(client, requests: list[tuple[str, dict]]) -> list:
    """Every POST sent at once, each answer awaited at most NO_HANG seconds."""
    pool = ThreadPoolExecutor(len(requests))
    try:
        futures = [pool.submit(client.post, path, data=data) for path, data in requests]
        return [f.result(timeout=NO_HANG) for f in futures]
    finally:
        # Not waiting for a request that hangs: the test fails, ``locked`` lets go of the
        # lock, and the request ends then.
        pool.shutdown(wait=False)


def assert_try_again(response) -> None:
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["cache-control"] == "no-store"
    assert "try again" in main_text(response.text).lower()


def test_a_one_click_while_the_database_is_locked_is_503_and_the_retry_unsubscribes(
        site, database_url):
    client, engine, subs, paths = site
    with locked(database_url, engine):
        (busy,) = answers(client, [(paths[0], ONE_CLICK)])
        assert_try_again(busy)
        assert row(engine, subs[0].email)["status"] == "active"  # nothing claimed
    retry = client.post(paths[0], data=ONE_CLICK)
    assert retry.status_code == 200
    assert "You are unsubscribed" in main_text(retry.text)
    after = row(engine, subs[0].email)
    assert after["status"] == "unsubscribed" and after["unsubscribe_method"] == "one-click"


def test_a_burst_while_locked_is_answered_at_once_and_every_retry_counts(site, database_url):
    client, engine, subs, paths = site
    with locked(database_url, engine):
        for response in answers(client, [(p, ONE_CLICK) for p in paths]):
            assert_try_again(response)
    assert {row(engine, s.email)["status"] for s in subs} == {"active"}
    for response in answers(client, [(p, ONE_CLICK) for p in paths]):
        assert response.status_code == 200
    assert {row(engine, s.email)["status"] for s in subs} == {"unsubscribed"}


def test_the_page_button_while_locked_asks_to_try_again(site, database_url):
    client, engine, subs, paths = site
    page = client.get(paths[1])
    button = {"action": "unsubscribe", "csrf": field(page.text, "csrf")}
    with locked(database_url, engine):
        (busy,) = answers(client, [(paths[1], button)])
        assert_try_again(busy)
    assert row(engine, subs[1].email)["status"] == "active"
    done = client.post(paths[1], data=button)
    assert done.status_code == 200 and row(engine, subs[1].email)["status"] == "unsubscribed"
    # The lock's shorter wait was for that request only: an ordinary write still waits.
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
