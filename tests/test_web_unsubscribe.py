"""/unsubscribe/{token}: RFC 8058 one-click, the page, idempotency, tokens that do not work."""

from __future__ import annotations

import pytest

from newsletter.audience import changes, subscribers
from newsletter.audience.tokens import make_token
from newsletter.store.db import connect
from newsletter.web.security import csrf_token
from tests.audience_helpers import mark_bounced
from tests.web_helpers import (
    SECRET,
    USER_AGENT,
    Clock,
    field,
    main_text,
    make_app,
    open_site,
    row,
    web_client,
    web_config,
)

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def setup(project, database_url):
    _, engine, clock, app = open_site(project, database_url)
    sub = subscribers.add(engine, "Jose.Nandu@bücher.example", name="José “Pepe” Ñandú")
    client = web_client(app, follow_redirects=False)
    token = make_token(SECRET, "unsubscribe", sub.id)
    return client, engine, clock, sub, f"/unsubscribe/{token}"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_the_one_click_post_unsubscribes_at_once(setup, encoding):
    client, engine, _, sub, path = setup
    if encoding == "urlencoded":
        response = client.post(path, data=ONE_CLICK)
    else:
        response = client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
        assert response.request.headers["content-type"].startswith("multipart/form-data")
    assert response.status_code == 200  # no redirect, no confirmation step
    assert "location" not in response.headers and "set-cookie" not in response.headers
    assert "You are unsubscribed" in main_text(response.text)
    assert response.headers["cache-control"] == "no-store"
    after = row(engine, sub.email)
    assert after["status"] == "unsubscribed"
    assert after["unsubscribe_method"] == "one-click"
    assert after["unsubscribe_user_agent"] == USER_AGENT
    assert after["unsubscribe_ip"] == "testclient"  # the peer (no trusted proxy)
    assert after["unsubscribed_at"] is not None


def test_a_get_changes_nothing_and_shows_the_newsletter_and_a_masked_address(setup):
    client, engine, _, sub, path = setup
    before = row(engine, sub.email)
    for _ in range(3):  # link scanners fetch links, sometimes several times
        response = client.get(path)
        assert response.status_code == 200
    text = main_text(response.text)
    assert "Unsubscribe from Five Things?" in text
    assert "J•••@b•••.example" in text and sub.email not in response.text
    assert '<button type="submit">Unsubscribe</button>' in response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert row(engine, sub.email) == before


def test_a_second_post_says_already_unsubscribed_and_keeps_the_first_record(setup):
    client, engine, clock, sub, path = setup
    client.post(path, data=ONE_CLICK)
    first = row(engine, sub.email)
    clock.advance(minutes=5)
    again = client.post(path, data=ONE_CLICK)
    assert again.status_code == 200
    assert "You are already unsubscribed" in main_text(again.text)
    assert row(engine, sub.email) == first


def test_the_page_button_unsubscribes_and_offers_to_resubscribe(setup):
    client, engine, clock, sub, path = setup
    page = client.get(path)
    done = client.post(path, data={"action": "unsubscribe", "csrf": field(page.text, "csrf")})
    assert done.status_code == 200
    assert "You are unsubscribed" in main_text(done.text)
    assert row(engine, sub.email)["unsubscribe_method"] == "page"
    assert "Resubscribe" in done.text
    clock.advance(minutes=1)
    back = client.post(path, data={"action": "resubscribe", "csrf": field(done.text, "csrf")})
    assert "You are subscribed again" in main_text(back.text)
    after = row(engine, sub.email)
    assert after["status"] == "active" and after["source"] == "web"
    assert after["unsubscribed_at"] is None and after["unsubscribe_method"] is None
    assert after["consented_at"] == clock.now and after["consent_user_agent"] == USER_AGENT


def test_resubscribe_is_only_for_someone_who_unsubscribed_themselves(setup):
    client, engine, clock, sub, path = setup
    changes.unsubscribe_address(engine, sub.email, reason="asked by phone")
    page = client.get(path)
    assert "You are unsubscribed" in main_text(page.text)
    assert "Resubscribe" not in page.text
    # The page offers no button; a hand-made request with a genuine CSRF token is refused too.
    csrf = csrf_token(SECRET, path, clock.now)
    forced = client.post(path, data={"action": "resubscribe", "csrf": csrf})
    assert forced.status_code == 200
    assert row(engine, sub.email)["status"] == "unsubscribed"


def test_a_bounced_address_is_told_so_and_offered_nothing(setup):
    client, engine, _, sub, path = setup
    mark_bounced(engine, sub.email, "550 no such user")
    page = client.get(path)
    assert "does not receive Five Things any more" in main_text(page.text)
    assert "<form" not in page.text
    assert client.post(path, data=ONE_CLICK).status_code == 200
    assert row(engine, sub.email)["status"] == "bounced"


@pytest.mark.parametrize("headers", [
    {},                                          # no CSRF token at all
    {"Origin": "https://evil.example"},          # posted from another site
    {"Sec-Fetch-Site": "cross-site"},
])
def test_the_page_form_is_refused_without_its_token_or_from_another_site(setup, headers):
    client, engine, _, sub, path = setup
    data = {"action": "unsubscribe"}
    if headers:
        data["csrf"] = field(client.get(path).text, "csrf")
    response = client.post(path, data=data, headers=headers)
    assert response.status_code == 403
    assert row(engine, sub.email)["status"] == "active"


def test_a_csrf_token_is_only_good_for_its_own_page(setup, project, database_url):
    client, engine, _, sub, path = setup
    other = subscribers.add(engine, "other@example.com")
    other_path = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', other.id)}"
    csrf = field(client.get(other_path).text, "csrf")
    assert client.post(path, data={"action": "unsubscribe", "csrf": csrf}).status_code == 403
    assert row(engine, sub.email)["status"] == "active"


def test_bad_tokens_get_one_plain_answer_that_reveals_nothing(setup):
    client, engine, _, sub, path = setup
    token = path.rsplit("/", 1)[1]
    ident, sig = token.split(".")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    bad = [
        f"{ident}.{flipped}",                                  # altered signature
        f"{int(ident, 36) + 1:x}.{sig}",                       # moved to another id
        make_token(SECRET, "confirm", sub.id),                 # made for another purpose
        make_token("another key entirely", "unsubscribe", sub.id),
        "not-a-token", "1.", "%00", "x" * 300,
    ]
    answers = set()
    for value in bad:
        for method in ("get", "post"):
            response = getattr(client, method)(f"/unsubscribe/{value}", **(
                {"data": ONE_CLICK} if method == "post" else {}))
            assert response.status_code == 400, value
            answers.add(main_text(response.text))
    assert len(answers) == 1 and "does not work" in answers.pop()
    assert row(engine, sub.email)["status"] == "active"


def test_an_erased_subscribers_link_says_not_subscribed(setup):
    client, engine, _, sub, path = setup
    subscribers.remove(engine, sub.email)
    for response in (client.get(path), client.post(path, data=ONE_CLICK)):
        assert response.status_code == 200
        assert "You are not subscribed" in main_text(response.text)


def test_a_genuine_token_for_an_id_never_handed_out_is_404(setup):
    client, *_ = setup
    for subscriber_id in (0, 10_000):  # 0: the id test sends sign their links with
        path = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', subscriber_id)}"
        assert client.get(path).status_code == 404
        assert client.post(path, data=ONE_CLICK).status_code == 404


def test_links_signed_with_the_previous_key_still_work(project, database_url):
    config = web_config(project, database_url, secret_key="the-new-key-0123456789",
                        secret_key_previous=SECRET)
    engine = connect(database_url)
    sub = subscribers.add(engine, "reader@example.com")
    client = web_client(make_app(config, Clock(), engine=engine))
    old = f"/unsubscribe/{make_token(SECRET, 'unsubscribe', sub.id)}"
    assert client.post(old, data=ONE_CLICK).status_code == 200
    assert row(engine, sub.email)["status"] == "unsubscribed"
