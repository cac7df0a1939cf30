"""/confirm/{token}: GET asks, POST confirms; expired links offer a new mail."""

from __future__ import annotations

import pytest

from newsletter.audience import changes, subscribers
from newsletter.audience.tokens import make_token
from newsletter.delivery.confirmations import drain_outbox
from tests.web_helpers import (
    SECRET,
    field,
    main_text,
    newest_confirm_path,
    open_site,
    outbox_rows,
    row,
    sign_up,
    web_client,
)


@pytest.fixture
def site(project, database_url):
    config, engine, clock, app = open_site(project, database_url)
    return config, engine, clock, web_client(app, follow_redirects=False)


def mailed_link(config, engine, clock, project) -> str:
    assert drain_outbox(config, engine, clock=clock) == 1
    return newest_confirm_path(project)


def test_the_link_asks_first_and_the_button_confirms(site, project):
    config, engine, clock, client = site
    sign_up(client, clock, "ada@example.com", name="Ada")
    link = mailed_link(config, engine, clock, project)
    for _ in range(2):  # a mail scanner's GET confirms nobody
        page = client.get(link)
        assert page.status_code == 200 and "Confirm your subscription" in main_text(page.text)
        assert page.headers["cache-control"] == "no-store"
    assert row(engine, "ada@example.com")["status"] == "pending"
    clock.advance(minutes=2)
    done = client.post(link, data={"action": "confirm", "csrf": field(page.text, "csrf")})
    assert done.status_code == 200 and "You are subscribed" in main_text(done.text)
    after = row(engine, "ada@example.com")
    assert after["status"] == "active" and after["confirmed_at"] == clock.now
    again = client.get(link)
    assert "You are already subscribed" in main_text(again.text)


def test_the_confirm_button_needs_its_csrf_token(site, project):
    config, engine, clock, client = site
    sign_up(client, clock, "ada@example.com")
    link = mailed_link(config, engine, clock, project)
    assert client.post(link, data={"action": "confirm"}).status_code == 403
    assert row(engine, "ada@example.com")["status"] == "pending"


def test_an_expired_link_offers_a_new_mail_whose_link_works(site, project):
    config, engine, clock, client = site
    sign_up(client, clock, "late@example.com")
    link = mailed_link(config, engine, clock, project)
    clock.advance(days=7, minutes=1)
    page = client.get(link)
    assert "This link has expired" in main_text(page.text)
    refused = client.post(link, data={"action": "confirm", "csrf": field(page.text, "csrf")})
    assert "This link has expired" in main_text(refused.text)
    assert row(engine, "late@example.com")["status"] == "pending"
    resent = client.post(link, data={"action": "resend", "csrf": field(page.text, "csrf")})
    assert "Check your inbox" in main_text(resent.text)
    fresh = mailed_link(config, engine, clock, project)
    assert fresh != link
    ask = client.get(fresh)
    client.post(fresh, data={"action": "confirm", "csrf": field(ask.text, "csrf")})
    assert row(engine, "late@example.com")["status"] == "active"


def test_asking_for_new_links_keeps_to_the_cooldown(site, project):
    config, engine, clock, client = site
    sign_up(client, clock, "late@example.com")
    link = mailed_link(config, engine, clock, project)
    clock.advance(days=8)
    csrf = field(client.get(link).text, "csrf")
    for _ in range(3):
        client.post(link, data={"action": "resend", "csrf": csrf})
    drain_outbox(config, engine, clock=clock)
    sent = [r for r in outbox_rows(engine) if r["status"] == "sent"]
    assert len(sent) == 2  # the first mail, and one more


def test_confirming_an_erased_address_again_lifts_the_erasure(site, project):
    config, engine, clock, client = site
    subscribers.add(engine, "back@example.com")
    subscribers.remove(engine, "back@example.com")
    sign_up(client, clock, "back@example.com")
    link = mailed_link(config, engine, clock, project)
    client.post(link, data={"action": "confirm", "csrf": field(client.get(link).text, "csrf")})
    assert row(engine, "back@example.com")["status"] == "active"
    # No longer refused as erased: the operator can manage it like any other address.
    assert changes.unsubscribe_address(engine, "back@example.com").status == "unsubscribed"


def test_confirm_links_that_do_not_work(site):
    _, engine, clock, client = site
    sub = subscribers.add(engine, "p@example.com", status="pending")
    good = make_token(SECRET, "confirm", sub.id, issued_at=clock.now)
    for token in (make_token(SECRET, "unsubscribe", sub.id),     # wrong purpose
                  make_token(SECRET, "confirm", sub.id),          # no issue time
                  good[:-2] + ("AA" if not good.endswith("AA") else "BB"), "junk"):
        assert client.get(f"/confirm/{token}").status_code == 400, token
    subscribers.remove(engine, "p@example.com")
    gone = client.get(f"/confirm/{good}")
    assert gone.status_code == 404 and "nothing to confirm" in main_text(gone.text)
