"""A reader's change of address: asked for on /manage/{token}, made with the link mailed to the
new address (/address/{token}), the old address told; on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from newsletter.audience import subscribers
from newsletter.audience.tokens import make_token
from newsletter.delivery.confirmations import drain_outbox
from newsletter.store.tables import status_changes, suppressions
from newsletter.web import security
from tests.web_helpers import (
    PUBLIC,
    SECRET,
    USER_AGENT,
    field,
    main_text,
    open_site,
    outbox_rows,
    path_of,
    read_eml,
    row,
    web_client,
)

OLD = "jose.nunez@bücher.example"
NEW = "Zoe.Nunez@bücher.example"


@pytest.fixture
def site(project, database_url):
    config, engine, clock, app = open_site(project, database_url)
    reader = subscribers.add(engine, "Jose.Nunez@bücher.example", name="José “Pepe” Núñez")
    manage = f"/manage/{make_token(SECRET, 'manage', reader.id)}"
    return config, engine, clock, web_client(app, follow_redirects=False), reader, manage


def history(engine, subscriber_id: int) -> list[tuple]:
    h = status_changes.c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(h.from_status, h.to_status, h.method, h.detail, h.user_agent)
            .where(h.subscriber_id == subscriber_id).order_by(h.id))]


def post(client, path: str, **data):
    page = client.get(path)
    return client.post(path, data={"csrf": field(page.text, "csrf"), **data})


def mails(project, subject: str) -> list:
    found = [read_eml(p) for p in (project / "outbox" / "confirmations").glob("*.eml")]
    return [m for m in found if m["Subject"] == subject]


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def ask(site, project, new: str = NEW) -> str:
    """The reader asks for ``new`` on the manage page; the path of the link mailed there."""
    config, engine, clock, client, reader, manage = site
    asked = post(client, manage, action="address", email=new)
    assert asked.status_code == 200, main_text(asked.text)
    assert drain_outbox(config, engine, clock=clock) == 1
    (mail,) = mails(project, "Confirm your new address for Five Things")
    match = re.search(r"https?://\S+/address/\S+", text_of(mail))
    assert match, text_of(mail)
    return path_of(match.group(0))


def test_asking_mails_the_new_address_and_changes_nothing_yet(site, project):
    config, engine, clock, client, reader, manage = site
    before = history(engine, reader.id)
    asked = post(client, manage, action="address", email=NEW)
    assert asked.status_code == 200
    assert asked.headers["cache-control"] == "no-store"
    text = main_text(asked.text)
    assert "Check your inbox" in text and f"A mail to {NEW} has a link" in text
    assert "Nothing changes until you open it" in text
    assert row(engine, OLD)["email"] == "Jose.Nunez@bücher.example"
    assert row(engine, NEW) is None and history(engine, reader.id) == before
    (queued,) = outbox_rows(engine)
    assert (queued["kind"], queued["address"], queued["subscriber_id"]) == (
        "address_confirm", NEW, reader.id)
    assert drain_outbox(config, engine, clock=clock) == 1
    (mail,) = mails(project, "Confirm your new address for Five Things")
    assert mail["To"].endswith("<Zoe.Nunez@xn--bcher-kva.example>")
    assert "Hi José," in text_of(mail) and f"{PUBLIC}/address/" in text_of(mail)


def test_the_link_s_page_changes_nothing_and_its_button_moves_the_address(site, project):
    config, engine, clock, client, reader, manage = site
    link = ask(site, project)
    before = history(engine, reader.id)
    for _ in range(2):  # a mail scanner, then the reader
        page = client.get(link)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
        text = main_text(page.text)
        assert "Confirm your new address" in text and NEW in text
    assert history(engine, reader.id) == before and row(engine, NEW) is None

    button = {"action": "confirm", "csrf": field(page.text, "csrf")}
    done = client.post(link, data=button)
    assert done.status_code == 200
    assert "Your address is changed" in main_text(done.text)
    moved = row(engine, NEW)
    assert moved["id"] == reader.id and moved["email"] == NEW and moved["status"] == "active"
    assert moved["name"] == "José “Pepe” Núñez"
    assert row(engine, OLD) is None
    assert history(engine, reader.id)[-1] == ("active", "active", "web", "address changed",
                                              USER_AGENT)
    confirm_row, notice = outbox_rows(engine)
    assert confirm_row["used_at"] is not None
    assert (notice["kind"], notice["address"]) == ("address_notice", "Jose.Nunez@bücher.example")
    assert drain_outbox(config, engine, clock=clock) == 1
    (told,) = mails(project, "Your address for Five Things has changed")
    assert told["To"].endswith("<Jose.Nunez@xn--bcher-kva.example>")
    assert "will no longer be sent to Jose.Nunez@bücher.example" in text_of(told)

    again = client.post(link, data=button)  # one use only
    assert again.status_code == 410 and "This link has been used" in main_text(again.text)
    assert client.get(link).status_code == 410
    assert len([h for h in history(engine, reader.id) if h[3] == "address changed"]) == 1


def answer_without_address(response, address: str) -> tuple[int, str]:
    return response.status_code, main_text(response.text).replace(address, "(address)")


def test_the_answer_is_the_same_whether_the_new_address_is_on_the_list(site):
    config, engine, clock, client, reader, manage = site
    subscribers.add(engine, "anders@bücher.example", name="Anders Ångström")
    stranger = post(client, manage, action="address", email="nobody.yet@bücher.example")
    listed = post(client, manage, action="address", email="anders@bücher.example")
    assert (answer_without_address(listed, "anders@bücher.example")
            == answer_without_address(stranger, "nobody.yet@bücher.example"))
    assert [(r["kind"], r["address"]) for r in outbox_rows(engine)] == [
        ("address_confirm", "nobody.yet@bücher.example"),
        ("address_confirm", "anders@bücher.example")]


@pytest.mark.parametrize("when", ["before", "since"])
def test_an_address_on_the_list_is_refused_at_the_link_and_nothing_changes(
        site, project, when):
    config, engine, clock, client, reader, manage = site
    taken = "Anders@bücher.example"
    if when == "before":
        subscribers.add(engine, taken, name="Anders Ångström")
    link = ask(site, project, taken)
    if when == "since":
        subscribers.add(engine, taken, name="Anders Ångström")
    refused = post(client, link, action="confirm")
    assert refused.status_code == 409
    assert "This address cannot be used" in main_text(refused.text)
    assert "nothing was changed" in main_text(refused.text)
    assert row(engine, OLD)["id"] == reader.id
    assert row(engine, taken)["name"] == "Anders Ångström"
    assert [r["kind"] for r in outbox_rows(engine)] == ["address_confirm"]
    assert outbox_rows(engine)[0]["used_at"] is None
    assert "address changed" not in [h[3] for h in history(engine, reader.id)]


def test_an_address_erased_on_request_is_not_brought_back_by_a_move(site, project):
    config, engine, clock, client, reader, manage = site
    erased = "Ingrid.Bergstrom@bücher.example"
    subscribers.add(engine, erased)
    subscribers.remove(engine, erased)
    link = ask(site, project, erased)
    refused = post(client, link, action="confirm")
    assert refused.status_code == 409
    assert "This address cannot be used" in main_text(refused.text)
    assert row(engine, erased) is None and row(engine, OLD)["id"] == reader.id
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(suppressions)).scalar() == 1


def test_a_subscriber_stopped_since_the_request_keeps_their_address(site, project):
    config, engine, clock, client, reader, manage = site
    link = ask(site, project)
    assert post(client, manage, action="unsubscribe").status_code == 200
    refused = post(client, link, action="confirm")
    assert refused.status_code == 409 and "Nothing was changed" in main_text(refused.text)
    assert row(engine, OLD)["status"] == "unsubscribed" and row(engine, NEW) is None
    page = client.get(manage)
    assert 'name="email"' not in page.text  # no address form for a stopped subscription
    again = post(client, manage, action="address", email=NEW)
    assert again.status_code == 409
    assert len(outbox_rows(engine)) == 1


def test_an_expired_link_changes_nothing(site, project):
    config, engine, clock, client, reader, manage = site
    link = ask(site, project)
    clock.advance(seconds=config.confirm_max_age + 1)
    expired = client.get(link)
    assert expired.status_code == 410 and "This link has expired" in main_text(expired.text)
    csrf = security.csrf_token(SECRET, link, clock.now)  # a form the page gave just now
    late = client.post(link, data={"action": "confirm", "csrf": csrf})
    assert late.status_code == 410
    assert row(engine, OLD)["id"] == reader.id and row(engine, NEW) is None
    assert outbox_rows(engine)[0]["used_at"] is None


@pytest.mark.parametrize("kind", ["altered", "manage", "data", "no row", "junk"])
def test_an_altered_or_foreign_token_is_not_found_and_changes_nothing(site, project, kind):
    config, engine, clock, client, reader, manage = site
    link = ask(site, project)
    genuine = link.rsplit("/", 1)[1]
    (asked,) = outbox_rows(engine)
    bad = {"altered": genuine[:-1] + ("A" if genuine[-1] != "A" else "B"),
           "manage": make_token(SECRET, "manage", reader.id),
           "data": make_token(SECRET, "data", asked["id"], issued_at=asked["created_at"]),
           "no row": make_token(SECRET, "address", asked["id"] + 99, issued_at=clock.now),
           "junk": "’%00<script>"}[kind]
    assert client.get(f"/address/{bad}").status_code == 404
    csrf = security.csrf_token(SECRET, f"/address/{bad}", clock.now)
    answer = client.post(f"/address/{bad}", data={"action": "confirm", "csrf": csrf})
    assert answer.status_code == 404
    assert row(engine, OLD)["id"] == reader.id and row(engine, NEW) is None


def test_a_post_without_the_page_s_csrf_token_changes_nothing(site, project):
    config, engine, clock, client, reader, manage = site
    assert client.post(manage, data={"action": "address", "email": NEW}).status_code == 403
    link = ask(site, project)
    assert client.post(link, data={"action": "confirm"}).status_code == 403
    cross_site = client.post(link, data={"action": "confirm",
                                         "csrf": field(client.get(link).text, "csrf")},
                             headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    assert row(engine, OLD)["id"] == reader.id and row(engine, NEW) is None


@pytest.mark.parametrize("typed, says", [
    ("zoë@bücher.example", "Please check the address"),  # SMTPUTF8: the providers refuse it
    ("Zoe@bücher.example\r\nBcc: eve@example.com", "control character"),
    ("not an address", "Please check the address"),
    ("", "empty address"),
    ("jose.nunez@BÜCHER.example", "That is already your address"),
])
def test_an_address_that_will_not_do_is_refused_and_nothing_is_queued(site, typed, says):
    config, engine, clock, client, reader, manage = site
    refused = post(client, manage, action="address", email=typed)
    assert refused.status_code == 422
    assert says in main_text(refused.text)
    assert outbox_rows(engine) == []


def test_asking_again_and_again_mails_the_new_address_once(site, project):
    config, engine, clock, client, reader, manage = site
    for _ in range(4):
        assert post(client, manage, action="address", email=NEW).status_code == 200
    assert drain_outbox(config, engine, clock=clock) == 1
    clock.advance(minutes=1)
    assert post(client, manage, action="address", email=NEW).status_code == 200
    assert drain_outbox(config, engine, clock=clock) == 0  # the cooldown
    assert len(mails(project, "Confirm your new address for Five Things")) == 1
