"""One-click while another writer holds the database: a quick 503 with Retry-After, nothing
recorded and nothing claimed, and the mail client's retry after the lock is gone succeeds."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter.audience import subscribers
from newsletter.audience.tokens import make_token
from newsletter.delivery.confirmations import drain_outbox
from newsletter.store.db import SQLITE_BUSY_TIMEOUT_MS, DatabaseBusy, connect, quick_writes
from newsletter.store.tables import subscribers as subscribers_table
from tests.web_helpers import (
    SECRET,
    Clock,
    confirm_link,
    field,
    main_text,
    make_app,
    open_site,
    path_of,
    read_eml,
    row,
    sign_up,
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


@dataclass
class Posts:
    client: TestClient
    pool: ThreadPoolExecutor

    def post(self, path: str, data: dict):
        return self.client.post(path, data=data)

    def get(self, path: str):
        return self.client.get(path)

    def at_once(self, requests: list[tuple[str, dict]]) -> list:
        """Every POST sent together, each answer awaited at most NO_HANG seconds."""
        futures = [self.pool.submit(self.post, path, data) for path, data in requests]
        return [f.result(timeout=NO_HANG) for f in futures]


@pytest.fixture
def site(project, database_url):
    _, engine, _, app = open_site(project, database_url)
    subs = [subscribers.add(engine, f"reader{i}@bücher.example", name=name)
            for i, name in enumerate(NAMES)]
    paths = [f"/unsubscribe/{make_token(SECRET, 'unsubscribe', s.id)}" for s in subs]
    # The pool closes first: a request that hung (the test has failed, and ``locked`` has let
    # go of the lock) ends before the client does, which would otherwise wait for it forever.
    with web_client(app, follow_redirects=False) as client, ThreadPoolExecutor(8) as pool:
        yield Posts(client, pool), engine, subs, paths


def assert_try_again(response) -> None:
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["cache-control"] == "no-store"
    assert "try again" in main_text(response.text).lower()


def test_a_one_click_while_the_database_is_locked_is_503_and_the_retry_unsubscribes(
        site, database_url):
    client, engine, subs, paths = site
    with locked(database_url, engine):
        (busy,) = client.at_once([(paths[0], ONE_CLICK)])
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
        for response in client.at_once([(p, ONE_CLICK) for p in paths]):
            assert_try_again(response)
    assert {row(engine, s.email)["status"] for s in subs} == {"active"}
    for response in client.at_once([(p, ONE_CLICK) for p in paths]):
        assert response.status_code == 200
    assert {row(engine, s.email)["status"] for s in subs} == {"unsubscribed"}


def test_the_page_button_while_locked_asks_to_try_again(site, database_url):
    client, engine, subs, paths = site
    page = client.get(paths[1])
    button = {"action": "unsubscribe", "csrf": field(page.text, "csrf")}
    with locked(database_url, engine):
        (busy,) = client.at_once([(paths[1], button)])
        assert_try_again(busy)
    assert row(engine, subs[1].email)["status"] == "active"
    done = client.post(paths[1], data=button)
    assert done.status_code == 200 and row(engine, subs[1].email)["status"] == "unsubscribed"


def test_the_short_wait_leaves_the_pooled_connection_as_it_was(database_url):
    engine = connect(database_url)
    subscribers.add(engine, "lena@bücher.example", name="Lena Müller")
    with locked(database_url, engine), quick_writes(engine, 0.2).connect() as conn:
        raw = conn.connection.dbapi_connection
        with pytest.raises(DatabaseBusy), conn.begin():
            conn.execute(subscribers_table.update().values(name="Lena Müller-Lüdenscheidt"))
    # The next user of that connection (a send, an import) waits as long as ever.
    if engine.dialect.name == "sqlite":
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == SQLITE_BUSY_TIMEOUT_MS
    else:
        assert raw.execute("SHOW lock_timeout").fetchone()[0] == "0"
        raw.rollback()



@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_any_page_that_cannot_write_for_the_lock_is_503_never_500(project, database_url):
    """Pages outside the one-click path (here the confirmation button) wait SQLite's usual
    busy timeout, then ask the reader to try again: 503 with Retry-After, never a 500."""
    config, engine, clock = web_config(project, database_url), connect(database_url), Clock()
    client = web_client(make_app(config, clock, engine=engine), follow_redirects=False)
    sign_up(client, clock, "zoe@bücher.example", name="Zoë Ångström")
    assert drain_outbox(config, engine, clock=clock) == 1
    mail = max((project / "outbox" / "confirmations").glob("*.eml"),
               key=lambda p: p.stat().st_mtime_ns)
    link = path_of(confirm_link(read_eml(mail)))
    button = {"action": "confirm", "csrf": field(client.get(link).text, "csrf")}
    clock.advance(minutes=2)
    with locked(database_url, engine), ThreadPoolExecutor(1) as pool:
        busy = pool.submit(client.post, link, data=button).result(timeout=NO_HANG + 10)
    assert busy.status_code == 503 and int(busy.headers["retry-after"]) > 0
    assert "try again" in main_text(busy.text).lower()
    assert row(engine, "zoe@bücher.example")["status"] == "pending"
    assert client.post(link, data=button).status_code == 200
    assert row(engine, "zoe@bücher.example")["status"] == "active"
