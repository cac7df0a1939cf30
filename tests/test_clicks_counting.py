"""Judging and counting fetches of counted links: HEAD, prefetch, scanners, bursts, and the
per-link counters on SQLite and PostgreSQL, which hold nothing about a reader."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from newsletter.clicks.burst import BurstFilter
from newsletter.clicks.counter import ClickCounter
from newsletter.clicks.fetches import why_filtered
from newsletter.clicks.scanners import LIST, fragments, is_scanner
from newsletter.clicks.store import Tally, add_counts, week_counts
from newsletter.edition.click_tokens import ClickTarget
from newsletter.store.db import connect
from newsletter.store.tables import click_counts

WEEK = "2026-W47"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
A = ClickTarget(WEEK, 1, 1, "https://xn--bcher-kva.example/z%C3%AB?a=1&b=2#f")
B = ClickTarget(WEEK, 2, 1, "https://example.org/b")
C = ClickTarget(WEEK, 3, 1, "https://example.org/c")
D = ClickTarget(WEEK, 3, 2, "https://example.org/d")


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- judged from the request ----------------------------------------------------------------


@pytest.mark.parametrize(("method", "headers", "why"), [
    ("GET", {"user-agent": FIREFOX}, None),
    ("GET", {"user-agent": SAFARI}, None),
    ("HEAD", {"user-agent": FIREFOX}, "head"),
    ("GET", {"user-agent": FIREFOX, "sec-purpose": "prefetch"}, "prefetch"),
    ("GET", {"user-agent": FIREFOX, "sec-purpose": "prefetch;prerender"}, "prefetch"),
    ("GET", {"user-agent": FIREFOX, "purpose": "Prefetch"}, "prefetch"),
    ("GET", {"user-agent": FIREFOX, "x-moz": "prefetch"}, "prefetch"),
    ("GET", {}, "no user agent"),
    ("GET", {"user-agent": "  "}, "no user agent"),
    ("GET", {"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                           "(KHTML, like Gecko) BingPreview/1.0b"}, "scanner"),
    ("GET", {"user-agent": "Mozilla/5.0 (compatible; Google-Safety; "
                           "+http://www.google.com/bot.html)"}, "scanner"),
    ("GET", {"user-agent": "Barracuda Sentinel (EE)"}, "scanner"),
    ("GET", {"user-agent": "python-requests/2.32.3"}, "scanner"),
])
def test_a_fetch_is_judged_from_its_request(method, headers, why):
    assert why_filtered(method, headers) == why


@pytest.mark.parametrize("agent", ["Mimecast URL Protect", "Proofpoint URL Defense/2.0",
                                   "MIMECAST", "Mozilla/5.0 HeadlessChrome/126.0"])
def test_the_scanner_list_matches_whatever_the_case(agent):
    assert is_scanner(agent)


def test_the_list_ships_with_the_package_names_its_sources_and_spares_readers():
    from importlib.resources import files

    text = files("newsletter.clicks").joinpath("data", LIST).read_text(encoding="utf-8")
    assert "Sources:" in text and "monperrus/crawler-user-agents" in text
    found = fragments(text)
    for vendor in ("Barracuda", "Mimecast", "Proofpoint", "BingPreview", "Google-Safety"):
        assert vendor in found
    assert all(not f.startswith("#") and f == f.strip() for f in found)
    # Readers' own browsers and mail apps are not on it.
    for reader in (FIREFOX, SAFARI, "Microsoft Outlook 16.0.17928; Pro",
                   "Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile Safari/537.36"):
        assert not is_scanner(reader), reader


# -- bursts -----------------------------------------------------------------------------


def test_a_click_is_held_for_the_window_then_counted():
    burst: BurstFilter[ClickTarget] = BurstFilter()
    burst.add(b"jose", A, 10.0)
    assert burst.release(11.9) == [] and burst.release(12.0) == []
    assert burst.release(12.01) == [(A, False)]
    assert len(burst) == 0


def test_three_different_links_within_two_seconds_are_a_burst_all_of_it():
    burst: BurstFilter[ClickTarget] = BurstFilter()
    burst.add(b"scanner", A, 10.0)
    burst.add(b"scanner", B, 10.5)
    burst.add(b"reader", A, 10.6)  # another client, meanwhile
    burst.add(b"scanner", C, 12.0)  # the third link, two seconds after the first
    burst.add(b"scanner", D, 12.5)  # still within the burst's reach
    released = burst.release(20.0)
    assert sorted((t.item, t.link, b) for t, b in released) == [
        (1, 1, False), (1, 1, True), (2, 1, True), (3, 1, True), (3, 2, True)]


def test_a_reader_reading_two_links_or_three_slowly_is_no_burst():
    burst: BurstFilter[ClickTarget] = BurstFilter()
    for at, target in ((10.0, A), (11.0, B), (12.5, C), (14.0, D), (14.1, D), (14.2, D)):
        burst.add(b"reader", target, at)
    assert [b for _, b in burst.release(30.0)] == [False] * 6


def test_everything_held_is_released_at_shutdown_and_a_flood_is_bounded():
    burst: BurstFilter[ClickTarget] = BurstFilter(max_held=3)
    for n in range(5):
        burst.add(b"flood", A, 10.0 + n / 100)
    assert len(burst) == 5
    assert len(burst.release(10.05)) == 2  # past the bound: the oldest, judged early
    assert len(burst.release(10.05, everything=True)) == 3 and len(burst) == 0


# -- the counter and the table -------------------------------------------------------------


def rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [(r.item, r.link, r.url, r.clicks, r.filtered) for r in week_counts(conn, WEEK)]


def test_counts_add_up_per_link_on_both_databases(database_url):
    engine = connect(database_url)
    add_counts(engine, {A: Tally(2, 1), B: Tally(0, 3)})
    add_counts(engine, {A: Tally(1, 0), C: Tally(0, 0)})
    # The same link again, its URL different (the item edited between renders): one row.
    moved = ClickTarget(WEEK, 2, 1, "https://example.org/b-moved")
    add_counts(engine, {B: Tally(1, 0), moved: Tally(1, 0)})
    assert rows(engine) == [(1, 1, A.url, 3, 1), (2, 1, moved.url, 2, 3)]


def test_the_counter_writes_judged_fetches_and_keeps_them_when_the_database_fails(
        database_url, tmp_path):
    engine, clock = connect(database_url), Monotonic()
    counter = ClickCounter(engine, clock=clock)
    counter.fetched(A, ip="203.0.113.7", user_agent=FIREFOX, filtered=False)
    counter.fetched(A, ip="203.0.113.7", user_agent="BingPreview", filtered=True)
    assert counter.write() == 1 and counter.held() == 1  # the click waits for its window
    clock.now += 2.5
    dead = ClickCounter(sa.create_engine(f"sqlite:///{tmp_path}/no/such/dir/x.db"),
                        clock=clock)
    dead.fetched(B, ip="198.51.100.1", user_agent=SAFARI, filtered=False)
    clock.now += 2.5
    with pytest.raises(sa.exc.OperationalError):
        dead.write()
    assert dead.tallied() == {B: Tally(1, 0)}  # kept for the next write
    assert counter.write() == 1
    assert rows(engine) == [(1, 1, A.url, 1, 1)]


def test_a_burst_through_the_counter_counts_as_filtered(database_url):
    engine, clock = connect(database_url), Monotonic()
    counter = ClickCounter(engine, clock=clock)
    for target in (A, B, C):
        counter.fetched(target, ip="192.0.2.9", user_agent=FIREFOX, filtered=False)
        clock.now += 0.4
    counter.fetched(D, ip="192.0.2.10", user_agent=FIREFOX, filtered=False)  # someone else
    counter.write(everything=True)
    assert rows(engine) == [(1, 1, A.url, 0, 1), (2, 1, B.url, 0, 1), (3, 1, C.url, 0, 1),
                            (3, 2, D.url, 1, 0)]


def test_one_client_is_known_by_a_key_that_is_neither_its_address_nor_lasting(database_url):
    engine = connect(database_url)
    one, other = ClickCounter(engine), ClickCounter(engine)
    key = one.client_key("203.0.113.7", FIREFOX)
    assert key == one.client_key("203.0.113.7", FIREFOX)
    assert key != one.client_key("203.0.113.8", FIREFOX) != one.client_key("203.0.113.7",
                                                                              SAFARI)
    assert key != other.client_key("203.0.113.7", FIREFOX)  # another process, another key
    assert b"203.0.113.7" not in key and len(key) == 16


def test_the_table_holds_nothing_about_a_reader(database_url):
    engine = connect(database_url)
    counter = ClickCounter(engine, clock=Monotonic())
    counter.fetched(A, ip="203.0.113.7", user_agent="José’s Firefox/128.0", filtered=False)
    counter.write(everything=True)
    columns = [c["name"] for c in sa.inspect(engine).get_columns("click_counts")]
    assert sorted(columns) == ["clicks", "filtered", "item", "link", "url", "week"]
    with engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(sa.select(click_counts))]
    assert stored == [(WEEK, 1, 1, A.url, 1, 0)]
    dump = repr(stored)
    assert "203.0.113" not in dump and "Firefox" not in dump and "José" not in dump
