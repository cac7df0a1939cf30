"""The archive: only sent editions, no recipient's data, cached, an Atom feed."""

from __future__ import annotations

import html as htmllib
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from newsletter.audience import subscribers
from newsletter.delivery import ledger
from newsletter.edition.content import load_edition
from newsletter.edition.render import render_week
from newsletter.store.db import connect
from tests.web_helpers import PUBLIC, Clock, main_text, make_app, web_client, web_config

WEEK = "2026-W47"
LATER = "2026-W48"
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def site(project, database_url):
    # A second edition, written but not sent, with a headline that needs escaping.
    shutil.copytree(project / "items" / WEEK, project / "items" / LATER)
    edition = project / "items" / LATER / "edition.md"
    edition.write_text(re.sub(r"(?m)^headline: .*$", 'headline: "R&D <draft> “soon”"',
                              edition.read_text()))
    config = web_config(project, database_url)
    engine = connect(database_url)
    subscribers.add(engine, "reader@example.com", name="Ada Secret")
    clock = Clock()
    app = make_app(config, clock, engine=engine)
    return config, engine, app, web_client(app), clock


def headline(config, week: str = WEEK) -> str:
    return load_edition(config.items_dir, week).headline


def start_send(config, engine, week: str) -> None:
    rendered = render_week(config, week)
    ledger.open_send(engine, week, rendered.content_hash, rendered.subject, "eml")


def test_an_edition_is_public_only_once_its_send_started(site):
    config, engine, _, client, _ = site
    assert client.get(f"/archive/{WEEK}").status_code == 404
    assert "No edition has been sent yet" in main_text(client.get("/archive").text)
    start_send(config, engine, WEEK)
    index = client.get("/archive")
    assert headline(config) in htmllib.unescape(index.text)
    assert f'href="/archive/{WEEK}"' in index.text and LATER not in index.text
    assert client.get(f"/archive/{WEEK}").status_code == 200
    assert client.get(f"/archive/{LATER}").status_code == 404
    for junk in ("2026-W99", "..%2F..%2Fetc", "latest"):
        assert client.get(f"/archive/{junk}").status_code == 404


def test_the_web_version_carries_no_recipients_data(site):
    config, engine, _, client, _ = site
    start_send(config, engine, WEEK)
    page = client.get(f"/archive/{WEEK}")
    html = page.text
    assert headline(config) in htmllib.unescape(html) and "Hi there," in html
    assert "Ada" not in html and "reader@example.com" not in html
    assert "/unsubscribe/" not in html and "@@" not in html
    assert f'href="{PUBLIC}/subscribe"' in html and ">Subscribe<" in html
    assert "View in your browser" not in html
    csp = page.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp


def test_the_page_is_rendered_once_and_again_only_when_its_files_change(site, project):
    config, engine, app, client, clock = site
    start_send(config, engine, WEEK)
    first = client.get(f"/archive/{WEEK}")
    for _ in range(20):
        assert client.get(f"/archive/{WEEK}").content == first.content
    assert app.state.archive.renders == 1
    etag = first.headers["etag"]
    assert client.get(f"/archive/{WEEK}", headers={"If-None-Match": etag}).status_code == 304
    item = next((project / "items" / WEEK).glob("01-*.md"))
    item.write_text(item.read_text() + "\nA late correction.\n")
    clock.advance(seconds=3)  # the files are looked at again every CHECK_EVERY seconds
    changed = client.get(f"/archive/{WEEK}")
    assert "A late correction." in changed.text and changed.headers["etag"] != etag
    assert app.state.archive.renders == 2


def test_the_feed_is_atom_with_one_entry_per_sent_edition(site):
    config, engine, _, client, _ = site
    start_send(config, engine, WEEK)
    start_send(config, engine, LATER)
    response = client.get("/feed.xml")
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(response.content)
    entries = feed.findall(f"{ATOM}entry")
    titles = [e.findtext(f"{ATOM}title") for e in entries]
    assert sorted(titles) == sorted([headline(config), "R&D <draft> “soon”"])
    links = {e.find(f"{ATOM}link").get("href") for e in entries}
    assert links == {f"{PUBLIC}/archive/{WEEK}", f"{PUBLIC}/archive/{LATER}"}
    assert feed.findtext(f"{ATOM}updated").endswith("Z")
    index = client.get("/archive").text
    assert "R&amp;D &lt;draft&gt; “soon”" in index


def test_every_email_links_to_its_archive_page(site):
    config, *_ = site
    rendered = render_week(config, WEEK)
    url = f"{PUBLIC}/archive/{WEEK}"
    assert f'href="{url}"' in rendered.html.literals[0]
    assert f"View in your browser: {url}" in rendered.text.literals[0]


def test_archive_false_turns_it_all_off(project, database_url):
    config = web_config(project, database_url, archive="false")
    engine = connect(database_url)
    subscribers.add(engine, "reader@example.com")
    start_send(config, engine, WEEK)
    client = web_client(make_app(config, Clock(), engine=engine))
    for path in ("/archive", f"/archive/{WEEK}", "/feed.xml"):
        assert client.get(path).status_code == 404, path
    rendered = render_week(config, WEEK)
    assert "/archive/" not in rendered.html.literals[0]
    assert "View in your browser" not in rendered.text.literals[0]
