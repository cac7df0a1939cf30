"""Headers, body limit, proxies, the access log, health: the app's defences, end to end."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from newsletter.audience import subscribers
from newsletter.audience.tokens import make_token
from newsletter.store.db import connect
from tests.web_helpers import (
    PUBLIC,
    SECRET,
    Clock,
    field,
    make_app,
    open_site,
    row,
    web_client,
    web_config,
)


@pytest.fixture
def site(project, database_url):
    config, engine, _, app = open_site(project, database_url)
    sub = subscribers.add(engine, "reader@example.com")
    return config, engine, app, web_client(app), sub


def test_every_page_gets_the_strict_headers(site):
    *_, client, sub = site
    token_page = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', sub.id)}"
    for path in ("/", "/subscribe", "/archive", "/healthz", "/no/such/page", token_page):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert "'unsafe-inline'" not in csp and "unsafe-eval" not in csp, path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        assert response.headers["x-content-type-options"] == "nosniff", path
    assert client.get("/no/such/page").status_code == 404
    assert client.delete("/subscribe").status_code == 405


def test_bodies_are_limited(site):
    *_, client, sub = site
    big = {"email": "x@example.com", "name": "x" * 100_000}
    assert client.post("/subscribe", data=big).status_code == 413
    path = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', sub.id)}"
    padded = {"List-Unsubscribe": "One-Click", "pad": "x" * 100_000}
    assert client.post(path, data=padded).status_code == 413
    assert client.post(path, files={"f": ("a.txt", b"file", "text/plain")}).status_code == 400


def test_the_access_log_has_one_line_per_request_and_never_a_token(site, caplog):
    *_, client, sub = site
    token = make_token(SECRET, "unsubscribe", sub.id)
    caplog.set_level(logging.INFO, logger="newsletter.web.access")
    client.get(f"/unsubscribe/{token}")
    client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    client.get("/subscribe", params={"email": "secret.person@example.com"})
    lines = [r.getMessage() for r in caplog.records if r.name == "newsletter.web.access"]
    assert len(lines) == 3
    assert lines[0].startswith("GET /unsubscribe/[token] 200 ")
    assert lines[1].startswith("POST /unsubscribe/[token] 200 ")
    assert lines[2].startswith("GET /subscribe 200 ")
    assert not any(token in line or "secret.person" in line for line in caplog.text.splitlines())


def test_forwarded_headers_are_believed_from_trusted_proxies_only(project, database_url):
    config = web_config(project, database_url, trusted_proxies="10.0.0.0/8, ::1")
    engine = connect(database_url)
    a = subscribers.add(engine, "a@example.com")
    b = subscribers.add(engine, "b@example.com")
    app = make_app(config, Clock(), engine=engine)
    forwarded = {"X-Forwarded-For": "198.51.100.7, 10.9.9.9", "X-Forwarded-Proto": "https"}
    # The proxy talks to us over plain http on an internal name; the page form still works,
    # because the browser's Origin is base_url's (the Host we are given plays no part).
    behind = web_client(app, client=("10.1.2.3", 4444))
    behind.base_url = "http://internal:8000"
    path_a = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', a.id)}"
    page = behind.get(path_a, headers=forwarded)
    done = behind.post(path_a, headers={**forwarded, "Origin": PUBLIC},
                       data={"action": "unsubscribe", "csrf": field(page.text, "csrf")})
    assert done.status_code == 200
    assert row(engine, "a@example.com")["unsubscribe_ip"] == "198.51.100.7"
    stranger = web_client(app, client=("203.0.113.9", 5555))
    path_b = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', b.id)}"
    stranger.post(path_b, headers=forwarded, data={"List-Unsubscribe": "One-Click"})
    assert row(engine, "b@example.com")["unsubscribe_ip"] == "203.0.113.9"


def test_control_characters_in_a_user_agent_are_not_stored(site):
    _, engine, _, client, sub = site
    path = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', sub.id)}"
    client.post(path, data={"List-Unsubscribe": "One-Click"},
                headers={"User-Agent": "Bot\tName\x7f/1.0"})
    assert row(engine, "reader@example.com")["unsubscribe_user_agent"] == "Bot Name /1.0"


def test_healthz_says_whether_the_database_answers(site, project, tmp_path):
    config, *_, client, _ = site
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").text == "ok\n"
    dead = sa.create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}")
    down = web_client(make_app(config, Clock(), engine=dead))
    response = down.get("/healthz")
    assert response.status_code == 503 and response.text == "database unavailable\n"


def test_nothing_redirects_anywhere(site):
    *_, client, sub = site
    for path in ("/subscribe?next=https://evil.example", "/?url=//evil.example",
                 f"/unsubscribe/{make_token(SECRET, 'unsubscribe', sub.id)}?next=//evil"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 200 and "location" not in response.headers
        assert "evil.example" not in response.text
