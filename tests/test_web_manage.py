"""/manage/{token}: the reader's own page, linked from every edition's footer."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from newsletter.audience import subscribers
from newsletter.audience.tokens import make_token
from newsletter.delivery.dry_run import dry_run
from newsletter.store.tables import status_changes
from newsletter.web import security
from tests.web_helpers import (
    PUBLIC,
    SECRET,
    USER_AGENT,
    field,
    main_text,
    open_site,
    read_eml,
    row,
    web_client,
)

WEEK = "2026-W47"


@pytest.fixture
def site(project, database_url):
    config, engine, clock, app = open_site(project, database_url)
    reader = subscribers.add(engine, "Jose.Nunez@bücher.example", name="José “Pepe” Núñez")
    path = f"/manage/{make_token(SECRET, 'manage', reader.id)}"
    return config, engine, clock, web_client(app, follow_redirects=False), reader, path


def history(engine, subscriber_id: int) -> list[tuple]:
    h = status_changes.c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(h.from_status, h.to_status, h.method, h.detail, h.user_agent)
            .where(h.subscriber_id == subscriber_id).order_by(h.id))]


def post(client, path: str, **data):
    page = client.get(path)
    return client.post(path, data={"csrf": field(page.text, "csrf"), **data})


def test_every_edition_links_the_reader_s_own_page(site, tmp_path):
    config, engine, clock, client, reader, path = site
    out = tmp_path / "dry-run"
    assert dry_run(config, WEEK, str(out)).count == 1
    (message,) = out.glob("*.eml")
    mail = read_eml(message)
    assert f"Manage your subscription: {PUBLIC}{path}" in mail.get_body(("plain",)).get_content()
    assert f'href="{PUBLIC}{path}"' in mail.get_body(("html",)).get_content()


def test_the_page_shows_the_forms_and_changes_nothing(site):
    config, engine, clock, client, reader, path = site
    before = history(engine, reader.id)
    for _ in range(2):
        page = client.get(path)
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
        text = main_text(page.text)
        assert "J•••@b•••.example receives Five Things every week" in text
        assert 'name="name" type="text" value="José “Pepe” Núñez"' in page.text
    assert history(engine, reader.id) == before
    assert row(engine, "jose.nunez@bücher.example")["status"] == "active"


def test_a_reader_changes_their_name_and_the_history_says_so(site):
    config, engine, clock, client, reader, path = site
    done = post(client, path, action="name", name="  Zoë “Zo” O’Brien ")
    assert done.status_code == 200 and "Your name is changed" in main_text(done.text)
    assert row(engine, "jose.nunez@bücher.example")["name"] == "Zoë “Zo” O’Brien"
    assert history(engine, reader.id)[-1] == ("active", "active", "web", "name changed",
                                              USER_AGENT)
    again = post(client, path, action="name", name="Zoë “Zo” O’Brien")
    assert again.status_code == 200
    assert len([h for h in history(engine, reader.id) if h[3] == "name changed"]) == 1


def test_a_name_with_a_control_character_is_refused_and_nothing_changes(site):
    config, engine, clock, client, reader, path = site
    refused = post(client, path, action="name", name="Zoë\r\nBcc: x@example.com")
    assert refused.status_code == 422
    assert "Please check the name" in main_text(refused.text)
    assert row(engine, "jose.nunez@bücher.example")["name"] == "José “Pepe” Núñez"


def test_a_reader_unsubscribes_from_the_page(site):
    config, engine, clock, client, reader, path = site
    done = post(client, path, action="unsubscribe")
    assert done.status_code == 200 and "You are unsubscribed" in main_text(done.text)
    found = row(engine, "jose.nunez@bücher.example")
    assert found["status"] == "unsubscribed" and found["unsubscribe_method"] == "page"
    assert history(engine, reader.id)[-1][:3] == ("active", "unsubscribed", "web")


def test_a_post_without_the_page_s_csrf_token_changes_nothing(site):
    config, engine, clock, client, reader, path = site
    for data in ({"action": "unsubscribe"}, {"action": "name", "name": "Eve", "csrf": "x"}):
        assert client.post(path, data=data).status_code == 403
    page = client.get(path)
    cross_site = client.post(path, data={"action": "unsubscribe",
                                         "csrf": field(page.text, "csrf")},
                             headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert row(engine, "jose.nunez@bücher.example")["status"] == "active"


@pytest.mark.parametrize("token", ["altered", "unsubscribe", "confirm", "nobody", "junk"])
def test_an_altered_or_foreign_token_is_not_found_and_changes_nothing(site, token):
    config, engine, clock, client, reader, path = site
    genuine = path.rsplit("/", 1)[1]
    bad = {"altered": genuine[:-1] + ("A" if genuine[-1] != "A" else "B"),
           "unsubscribe": make_token(SECRET, "unsubscribe", reader.id),
           "confirm": make_token(SECRET, "confirm", reader.id, issued_at=clock.now),
           "nobody": make_token(SECRET, "manage", reader.id + 999),
           "junk": "’%00<script>"}[token]
    assert client.get(f"/manage/{bad}").status_code == 404
    # Even with a CSRF token genuine for that path, as the page would have given one.
    csrf = security.csrf_token(SECRET, f"/manage/{bad}", clock.now)
    answer = client.post(f"/manage/{bad}", data={"action": "unsubscribe", "csrf": csrf})
    assert answer.status_code == 404
    assert row(engine, "jose.nunez@bücher.example")["status"] == "active"
