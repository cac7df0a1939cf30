"""A reader's own data: "Send me my data" on /manage/{token}, a mail with a one-time link,
/data/{token} (GET shows a button, POST downloads the JSON of ``subscribers export
--person``); on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

import pytest

from newsletter.audience import subscribers
from newsletter.audience.person_export import person_record
from newsletter.audience.tokens import make_token
from newsletter.delivery.confirmations import drain_outbox
from newsletter.web import security
from tests.web_helpers import (
    PUBLIC,
    SECRET,
    field,
    main_text,
    open_site,
    outbox_rows,
    path_of,
    read_eml,
    web_client,
)

ADDRESS = "Jose.Nunez@bücher.example"
SUBJECT = "Your data at Five Things"


@pytest.fixture
def site(project, database_url):
    config, engine, clock, app = open_site(project, database_url)
    reader = subscribers.add(engine, ADDRESS, name="José “Pepe” O’Núñez")
    manage = f"/manage/{make_token(SECRET, 'manage', reader.id)}"
    return config, engine, clock, web_client(app, follow_redirects=False), reader, manage


def post(client, path: str, **data):
    page = client.get(path)
    return client.post(path, data={"csrf": field(page.text, "csrf"), **data})


def mails(project) -> list:
    found = [read_eml(p) for p in (project / "outbox" / "confirmations").glob("*.eml")]
    return [m for m in found if m["Subject"] == SUBJECT]


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def ask(site, project) -> str:
    config, engine, clock, client, reader, manage = site
    asked = post(client, manage, action="data")
    assert asked.status_code == 200
    assert drain_outbox(config, engine, clock=clock) == 1
    (mail,) = mails(project)
    match = re.search(r"https?://\S+/data/\S+", text_of(mail))
    assert match, text_of(mail)
    return path_of(match.group(0))


def used_at(engine):
    (link,) = [r for r in outbox_rows(engine) if r["kind"] == "data_link"]
    return link["used_at"]


def test_asking_mails_a_link_to_the_subscriber_s_own_address(site, project):
    config, engine, clock, client, reader, manage = site
    asked = post(client, manage, action="data")
    assert asked.status_code == 200 and asked.headers["cache-control"] == "no-store"
    text = main_text(asked.text)
    assert "Check your inbox" in text and "A mail to J•••@b•••.example has a link" in text
    (queued,) = outbox_rows(engine)
    assert (queued["kind"], queued["address"]) == ("data_link", None)
    assert drain_outbox(config, engine, clock=clock) == 1
    (mail,) = mails(project)
    assert mail["To"].endswith("<Jose.Nunez@xn--bcher-kva.example>")
    assert "Hi José," in text_of(mail) and f"{PUBLIC}/data/" in text_of(mail)


def test_the_link_s_page_changes_nothing_and_its_button_downloads_once(site, project):
    config, engine, clock, client, reader, manage = site
    link = ask(site, project)
    for _ in range(2):  # a mail scanner, then the reader: neither uses the link up
        page = client.get(link)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert "Download my data" in main_text(page.text)
    assert used_at(engine) is None

    button = {"action": "download", "csrf": field(page.text, "csrf")}
    download = client.post(link, data=button)
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/json; charset=utf-8"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["cache-control"] == "no-store"
    assert download.headers["referrer-policy"] == "no-referrer"
    data = json.loads(download.content.decode("utf-8"))
    assert "O’Núñez" in download.content.decode("utf-8")  # as written, not \\u-escaped
    expected = person_record(engine, ADDRESS)
    for record in (data, expected):
        record.pop("exported_at")
        for row in record["confirmations"]:
            row.pop("used_at"), row.pop("updated_at")  # the download itself uses the link
    assert data == expected
    assert data["subscriber"]["name"] == "José “Pepe” O’Núñez"
    assert used_at(engine) is not None

    again = client.post(link, data=button)
    assert again.status_code == 410 and "This link has been used" in main_text(again.text)
    assert client.get(link).status_code == 410


def test_an_expired_link_gives_nothing_and_stays_unused(site, project):
    config, engine, clock, client, reader, manage = site
    link = ask(site, project)
    clock.advance(seconds=config.confirm_max_age + 1)
    expired = client.get(link)
    assert expired.status_code == 410 and "This link has expired" in main_text(expired.text)
    csrf = security.csrf_token(SECRET, link, clock.now)
    late = client.post(link, data={"action": "download", "csrf": csrf})
    assert late.status_code == 410 and "application/json" not in late.headers["content-type"]
    assert used_at(engine) is None


@pytest.mark.parametrize("kind", ["altered", "manage", "address", "no row", "junk"])
def test_an_altered_or_foreign_token_is_not_found_and_gives_nothing(site, project, kind):
    config, engine, clock, client, reader, manage = site
    link = ask(site, project)
    genuine = link.rsplit("/", 1)[1]
    (asked,) = outbox_rows(engine)
    bad = {"altered": genuine[:-1] + ("A" if genuine[-1] != "A" else "B"),
           "manage": make_token(SECRET, "manage", reader.id),
           "address": make_token(SECRET, "address", asked["id"], issued_at=asked["created_at"]),
           "no row": make_token(SECRET, "data", asked["id"] + 99, issued_at=clock.now),
           "junk": "’%00<script>"}[kind]
    assert client.get(f"/data/{bad}").status_code == 404
    csrf = security.csrf_token(SECRET, f"/data/{bad}", clock.now)
    answer = client.post(f"/data/{bad}", data={"action": "download", "csrf": csrf})
    assert answer.status_code == 404 and "application/json" not in answer.headers["content-type"]
    assert used_at(engine) is None


def test_a_post_without_the_page_s_csrf_token_gives_nothing(site, project):
    config, engine, clock, client, reader, manage = site
    assert client.post(manage, data={"action": "data"}).status_code == 403
    link = ask(site, project)
    assert client.post(link, data={"action": "download"}).status_code == 403
    cross_site = client.post(link, data={"action": "download",
                                         "csrf": field(client.get(link).text, "csrf")},
                             headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert used_at(engine) is None


def test_a_flood_of_requests_mails_once(site, project):
    config, engine, clock, client, reader, manage = site
    for _ in range(5):
        assert post(client, manage, action="data").status_code == 200
    assert drain_outbox(config, engine, clock=clock) == 1
    clock.advance(minutes=1)
    post(client, manage, action="data")
    assert drain_outbox(config, engine, clock=clock) == 0  # the cooldown
    assert len(mails(project)) == 1


def test_an_erased_person_s_link_gives_nothing(site, project):
    config, engine, clock, client, reader, manage = site
    link = ask(site, project)
    page = client.get(link)
    subscribers.remove(engine, ADDRESS)
    assert client.get(link).status_code == 404
    answer = client.post(link, data={"action": "download", "csrf": field(page.text, "csrf")})
    assert answer.status_code == 404
