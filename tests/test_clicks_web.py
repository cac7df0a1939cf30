"""``GET /r/<token>`` end to end: the redirect, what is counted and what is filtered, tokens
that must not redirect, the database away, shutdown, and the figures in the report and
``/metrics`` against the table."""

from __future__ import annotations

import json
import logging
import re

import pytest
import sqlalchemy as sa

from newsletter.audience import subscribers
from newsletter.delivery import ledger
from newsletter.edition.click_tokens import ClickTarget, make_click_token, read_click_token
from newsletter.edition.render import render_week
from newsletter.report.gather import edition_report
from newsletter.report.render import to_html, to_json
from newsletter.store.db import connect
from newsletter.store.tables import click_counts
from tests.web_helpers import PUBLIC, SECRET, Clock, make_app, web_client, web_config

pytestmark = pytest.mark.usefixtures("engines_disposed")

WEEK = "2026-W47"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
METRICS_TOKEN = "metrics-token-0123456789"
ITEM = """---
title: Zoë’s “Bücherei”
url: https://bücher.example/zoë?lang=de&page=2#kapitel-3
---
Read [the piece](https://straße.example/weg?a=1&b=ä) and [more](https://example.org/more).
"""


class Monotonic:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def site(project, database_url):
    (project / "items" / WEEK / "06-bucherei.md").write_text(ITEM, encoding="utf-8")
    config = web_config(project, database_url, click_counts="true",
                        metrics_token=METRICS_TOKEN)
    engine = connect(database_url)
    subscribers.add(engine, "jose@bücher.example", name="José Núñez")
    rendered = render_week(config, WEEK)
    ledger.open_send(engine, WEEK, rendered.content_hash, rendered.subject, "eml")
    html = rendered.html.fill({"first_name": "José", "name": "José Núñez",
                               "email": "jose@bücher.example", "unsubscribe_url": "x",
                               "manage_url": "m"})
    links = list(dict.fromkeys(re.findall(re.escape(PUBLIC) + r"(/r/[A-Za-z0-9_.-]+)", html)))
    mono = Monotonic()
    app = make_app(config, Clock(), engine=engine, monotonic=mono)
    return config, engine, mono, app, links


def target(path: str) -> ClickTarget:
    return read_click_token(SECRET, path.removeprefix("/r/"))


def counted(app, mono) -> None:
    """Past every burst window, then written: as the background writer would."""
    mono.now += 10
    app.state.clicks.counter.write(everything=True)


def table(engine) -> dict[tuple[int, int], tuple[int, int]]:
    with engine.connect() as conn:
        found = conn.execute(sa.select(click_counts.c.item, click_counts.c.link,
                                       click_counts.c.clicks, click_counts.c.filtered))
        return {(i, link): (c, f) for i, link, c, f in found}


def test_a_click_redirects_to_the_original_url_and_is_counted(site):
    _, engine, mono, app, links = site
    client = web_client(app, headers={"User-Agent": FIREFOX})
    mine = [p for p in links if target(p).item == 6]
    assert [target(p).url for p in mine] == [
        "https://xn--strae-oqa.example/weg?a=1&b=%C3%A4", "https://example.org/more",
        "https://xn--bcher-kva.example/zo%C3%AB?lang=de&page=2#kapitel-3"]
    response = client.get(mine[2], follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == target(mine[2]).url
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in response.headers
    counted(app, mono)
    assert table(engine) == {(6, 3): (1, 0)}


def test_head_prefetch_scanners_and_no_user_agent_are_answered_and_filtered(site):
    _, engine, mono, app, links = site
    client = web_client(app, headers={"User-Agent": FIREFOX})
    path = links[0]
    assert client.head(path, follow_redirects=False).status_code == 302
    assert client.get(path, headers={"Sec-Purpose": "prefetch"},
                      follow_redirects=False).status_code == 302
    assert client.get(path, headers={"Purpose": "prefetch"},
                      follow_redirects=False).status_code == 302
    for agent in ("Mozilla/5.0 (compatible; BingPreview/1.0b)", "Barracuda Sentinel (EE)",
                  "Mimecast URL Protect", ""):
        response = client.get(path, headers={"User-Agent": agent}, follow_redirects=False)
        assert response.status_code == 302
    client.get(path, follow_redirects=False)  # and one reader
    counted(app, mono)
    assert table(engine) == {(1, 1): (1, 7)}


def test_a_burst_of_one_client_is_filtered_and_other_readers_still_count(site):
    _, engine, mono, app, links = site
    scanner = web_client(app, headers={"User-Agent": FIREFOX}, client=("198.51.100.4", 1))
    reader = web_client(app, headers={"User-Agent": FIREFOX}, client=("203.0.113.9", 2))
    for path in links[:4]:
        scanner.get(path, follow_redirects=False)
        mono.now += 0.5
    reader.get(links[0], follow_redirects=False)
    mono.now += 5
    reader.get(links[1], follow_redirects=False)  # a second story, later: still a reader
    counted(app, mono)
    assert table(engine) == {(1, 1): (1, 1), (2, 1): (1, 1), (3, 1): (0, 1), (4, 1): (0, 1)}


@pytest.mark.parametrize("forge", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
    lambda t: make_click_token("another-secret-0123456789", read_click_token(SECRET, t)),
    lambda t: make_click_token("another-secret-0123456789",
                               ClickTarget(WEEK, 1, 1, "https://evil.example/")),
    lambda t: t.replace(t.split(".")[3], "aHR0cHM6Ly9ldmlsLmV4YW1wbGUv"),
    lambda t: t + "." + t,
    lambda t: "x" * 20_000,
    lambda t: "2026-W47.1.1.%2F%2Fevil.example.AAAAAAAAAAAAAAAAAAAAAA",
])
def test_a_token_that_does_not_verify_is_not_found_and_never_redirects(site, forge):
    _, engine, mono, app, links = site
    client = web_client(app, headers={"User-Agent": FIREFOX})
    for method in ("GET", "HEAD"):
        response = client.request(method, "/r/" + forge(links[0].removeprefix("/r/")),
                                  follow_redirects=False)
        assert response.status_code == 404 and "location" not in response.headers
    counted(app, mono)
    assert table(engine) == {}


def test_a_link_signed_before_a_key_rotation_still_redirects(project, database_url):
    old = "the-old-secret-0123456789abcdef"
    config = web_config(project, database_url, click_counts="true",
                        secret_key_previous=old)
    client = web_client(make_app(config, Clock(), engine=connect(database_url)))
    token = make_click_token(old, ClickTarget(WEEK, 2, 1, "https://example.org/x"))
    response = client.get(f"/r/{token}", follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == "https://example.org/x"


def test_without_click_counts_there_is_no_redirect(project, database_url):
    config = web_config(project, database_url)
    client = web_client(make_app(config, Clock(), engine=connect(database_url)))
    token = make_click_token(SECRET, ClickTarget(WEEK, 1, 1, "https://example.org/x"))
    response = client.get(f"/r/{token}", follow_redirects=False)
    assert response.status_code == 404 and "location" not in response.headers


def test_a_forged_host_changes_nothing_of_the_redirect(site):
    *_, app, links = site
    client = web_client(app, headers={"User-Agent": FIREFOX})
    honest = client.get(links[0], follow_redirects=False)
    forged = client.get(links[0], follow_redirects=False,
                        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})
    assert forged.headers["location"] == honest.headers["location"] == target(links[0]).url


def test_the_reader_is_redirected_while_the_database_is_away(project, database_url,
                                                             tmp_path, caplog):
    config = web_config(project, database_url, click_counts="true")
    dead = sa.create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}")
    app = make_app(config, Clock(), engine=dead, monotonic=Monotonic())
    token = make_click_token(SECRET, ClickTarget(WEEK, 1, 1, "https://example.org/x"))
    with (caplog.at_level(logging.WARNING, logger="newsletter.web"),
          web_client(app, headers={"User-Agent": FIREFOX}) as client):
        response = client.get(f"/r/{token}", follow_redirects=False)
        assert response.status_code == 302
    assert "click counts not written yet" in caplog.text  # at shutdown: logged, no 500
    assert app.state.clicks.counter.tallied()  # still held, for a write that works


def test_shutdown_writes_the_clicks_still_held(site):
    _, engine, _, app, links = site
    with web_client(app, headers={"User-Agent": FIREFOX}) as client:
        client.get(links[1], follow_redirects=False)
    assert table(engine) == {(2, 1): (1, 0)}


def test_the_access_log_names_no_link(site, caplog):
    *_, app, links = site
    with caplog.at_level(logging.INFO, logger="newsletter.web.access"):
        web_client(app).get(links[0], follow_redirects=False)
    assert "GET /r/[token] 302" in caplog.text
    assert links[0].removeprefix("/r/") not in caplog.text


def test_the_report_and_metrics_show_the_table_s_figures(site):
    config, engine, mono, app, links = site
    reader = web_client(app, headers={"User-Agent": FIREFOX})
    item6 = [p for p in links if target(p).item == 6]
    for path in (item6[1], item6[1], item6[0], links[0]):
        reader.get(path, follow_redirects=False)
        mono.now += 3  # a reader, unhurried
    reader.head(item6[2], follow_redirects=False)
    counted(app, mono)
    assert table(engine) == {(1, 1): (1, 0), (6, 1): (1, 0), (6, 2): (2, 0), (6, 3): (0, 1)}

    report = edition_report(config, WEEK)
    assert report.clicks.enabled and report.clicks.note == ""
    by_item = {i.item: i for i in report.clicks.items}
    assert sorted(by_item) == [1, 2, 3, 4, 5, 6]  # every item, zero or not
    six = by_item[6]
    assert (six.title, six.clicks, six.filtered) == ("Zoë’s “Bücherei”", 3, 1)
    assert [(link.link, link.clicks, link.filtered) for link in six.links] == [
        (2, 2, 0), (1, 1, 0), (3, 0, 1)]
    assert (by_item[2].clicks, by_item[2].filtered, by_item[2].links) == (0, 0, ())

    found = json.loads(to_json(report))["clicks"]
    assert found["enabled"] is True
    assert found["items"][5] == {
        "item": 6, "title": "Zoë’s “Bücherei”", "clicks": 3, "filtered": 1,
        "links": [{"link": 2, "url": "https://example.org/more", "clicks": 2, "filtered": 0},
                  {"link": 1, "url": "https://xn--strae-oqa.example/weg?a=1&b=%C3%A4",
                   "clicks": 1, "filtered": 0},
                  {"link": 3, "url": "https://xn--bcher-kva.example/zo%C3%AB?lang=de&page=2"
                                     "#kapitel-3", "clicks": 0, "filtered": 1}]}
    page = to_html(report, name=config.name, templates_dir=str(config.templates_dir))
    section = page[page.index('<section id="clicks">'):]
    assert "6. Zoë’s “Bücherei”</td><td class=\"n\">3</td><td class=\"n\">1</td>" in \
        section.replace("&#34;", '"').replace("&#39;", "'")
    assert "https://example.org/more</span> (2)" in section
    assert "click counting is off" not in section

    metrics = web_client(app).get("/metrics",
                                  headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert 'newsletter_clicks_total{kind="counted"} 4.0' in metrics
    assert 'newsletter_clicks_total{kind="filtered"} 1.0' in metrics


def test_with_counting_on_and_nothing_fetched_the_report_says_so(site):
    config, *_ = site
    clicks = edition_report(config, WEEK).clicks
    assert clicks.enabled and clicks.note == "no link of this edition has been fetched yet"
    assert [(i.clicks, i.filtered) for i in clicks.items] == [(0, 0)] * 6


@pytest.mark.parametrize("path", ["/r/%00", "/r/%FF%FE", "/r/Zo%C3%AB%E2%80%9D", "/r/..%2F..",
                                  "/r/2026-W47.1.1.aHR0cHM6Ly9leGFtcGxlLm9yZy8%0D%0A.x",
                                  "/r/" + "A" * 8000, "/r/a/b", "/r/"])
def test_hostile_paths_are_not_found_never_a_500(site, path):
    *_, app, _ = site
    response = web_client(app, raise_server_exceptions=False).get(path, follow_redirects=False)
    assert response.status_code == 404 and "location" not in response.headers
