"""Sign-up: the consent record, one answer for every address, the cooldown, the bot gate."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import altcha
import pytest
import sqlalchemy as sa

from newsletter.delivery.confirmations import drain_outbox
from newsletter.store.db import connect
from newsletter.store.tables import status_changes
from newsletter.web.subscribe import consent_text
from tests.audience_helpers import STANDINGS, put_in_standing
from tests.web_helpers import (
    USER_AGENT,
    Clock,
    field,
    main_text,
    make_app,
    open_site,
    outbox_rows,
    read_eml,
    row,
    sign_up,
    web_client,
    web_config,
)


@pytest.fixture
def site(project, database_url):
    config, engine, clock, app = open_site(project, database_url)
    return config, engine, clock, web_client(app)


def test_a_sign_up_is_pending_with_its_consent_record_and_one_confirmation(site, project):
    config, engine, clock, client = site
    response = sign_up(client, clock, "Zoe@Bücher.example", name="Zoë “Zo” O’Brien")
    assert response.status_code == 200
    assert "Check your inbox" in main_text(response.text)
    new = row(engine, "zoe@bücher.example")
    assert new["status"] == "pending" and new["source"] == "web"
    assert new["email"] == "Zoe@Bücher.example" and new["name"] == "Zoë “Zo” O’Brien"
    assert new["consented_at"] == clock.now and new["confirmed_at"] is None
    # Until confirmed, the consent waits in the status history.
    h = status_changes.c
    with engine.connect() as conn:
        signed = conn.execute(sa.select(status_changes).where(h.subscriber_id == new["id"])).one()
    assert (signed.method, signed.from_status, signed.to_status) == ("web", None, "pending")
    assert signed.consent_text == consent_text(config)
    assert signed.ip == "testclient" and signed.user_agent == USER_AGENT
    assert [r["status"] for r in outbox_rows(engine)] == ["pending"]
    assert drain_outbox(config, engine, clock=clock) == 1
    (mail,) = (project / "outbox" / "confirmations").glob("*.eml")
    message = read_eml(mail)
    assert message["To"].addresses[0].display_name == "Zoë “Zo” O’Brien"
    assert message["Subject"] == "Confirm your subscription to Five Things"
    assert "List-Unsubscribe" not in message  # not subscribed yet: nothing to unsubscribe
    assert "Hi Zoë," in message.get_body(("plain",)).get_content()


def test_the_form_shows_the_wording_that_is_recorded(site):
    config, _, _, client = site
    assert consent_text(config) in client.get("/subscribe").text


def test_the_answer_is_the_same_whatever_the_address_is(site):
    _, engine, clock, client = site
    pages, api = set(), set()
    for status in STANDINGS:
        email = f"{status}@example.com"
        put_in_standing(engine, status, email)
        page = sign_up(client, clock, email)
        assert page.status_code == 200
        pages.add(main_text(page.text).replace(email, "ADDRESS"))
        token = client.get("/api/subscribe").json()["form_token"]
        clock.advance(seconds=3)
        answer = client.post("/api/subscribe", json={"email": f"x.{email}", "form_token": token})
        api.add((answer.status_code, answer.text))
        clock.advance(minutes=20)  # out of the per-IP window
    assert len(pages) == 1 and len(api) == 1


def test_what_happens_behind_the_answer(site, project):
    config, engine, clock, client = site
    for status in STANDINGS:
        put_in_standing(engine, status, f"{status}@example.com")
    for status in STANDINGS:
        sign_up(client, clock, f"{status}@example.com")
        clock.advance(minutes=20)
    # Every sign-up queues a row, whoever the address is; the sender decides who is mailed.
    assert len(outbox_rows(engine)) == len(STANDINGS)
    assert drain_outbox(config, engine, clock=clock) == 4
    mailed = {read_eml(p)["To"].addresses[0].addr_spec
              for p in (project / "outbox" / "confirmations").glob("*.eml")}
    after = {s: row(engine, f"{s}@example.com") for s in STANDINGS}
    for status in ("new", "unsubscribed", "erased", "pending"):
        assert after[status]["status"] == "pending", status
        assert consent_text(config) in _consents(engine, after[status]["id"]), status
        assert f"{status}@example.com" in mailed, status
    assert after["active"]["status"] == "active"
    assert after["bounced"]["status"] == "bounced"
    assert after["complained"]["status"] == "complained"
    for status in ("active", "bounced", "complained"):
        assert f"{status}@example.com" not in mailed


def _consents(engine, subscriber_id: int) -> list[str]:
    """The wording of each of the subscriber's sign-ups, as the status history keeps it."""
    h = status_changes.c
    with engine.connect() as conn:
        return list(conn.execute(sa.select(h.consent_text).where(
            h.subscriber_id == subscriber_id, h.consent_text.is_not(None))).scalars())


def test_a_pending_address_is_mailed_again_only_after_ten_minutes_and_three_times_a_day(site):
    config, engine, clock, client = site
    times = [0, 5, 11, 15, 23, 40, 60 * 24 + 30]  # minutes after the first sign-up
    start = clock.now
    mails = []
    for minute in times:
        clock.now = start + timedelta(minutes=minute)
        sign_up(client, clock, "victim@example.com")
        mails.append(drain_outbox(config, engine, clock=clock))
    # 0: mailed; 5: too soon; 11: mailed; 15: too soon; 23: mailed (third today);
    # 40: fourth in a day, refused; a day later: mailed again.
    assert mails == [1, 0, 1, 0, 1, 0, 1]


def test_a_filled_honeypot_looks_like_success_and_stores_nothing(site):
    _, engine, clock, client = site
    response = sign_up(client, clock, "bot@example.com", website="http://spam.example")
    assert response.status_code == 200 and "Check your inbox" in main_text(response.text)
    assert row(engine, "bot@example.com") is None and outbox_rows(engine) == []


def test_too_fast_or_forged_form_tokens_look_like_success_and_store_nothing(site):
    _, engine, clock, client = site
    token = field(client.get("/subscribe").text, "form_token")
    clock.advance(seconds=1)  # faster than a person
    fast = client.post("/subscribe", data={"email": "fast@example.com", "form_token": token})
    forged = client.post("/subscribe", data={"email": "forged@example.com",
                                             "form_token": "1.AAAAAAAAAAAAAAAAAAAAAA"})
    missing = client.post("/subscribe", data={"email": "missing@example.com"})
    for response in (fast, forged, missing):
        assert response.status_code == 200 and "Check your inbox" in main_text(response.text)
    for email in ("fast", "forged", "missing"):
        assert row(engine, f"{email}@example.com") is None
    assert outbox_rows(engine) == []


def test_a_form_left_open_for_more_than_a_day_is_shown_again(site):
    _, engine, clock, client = site
    token = field(client.get("/subscribe").text, "form_token")
    clock.advance(days=1, seconds=1)
    again = client.post("/subscribe", data={"email": "slow@example.com", "form_token": token})
    assert "had been open for a long time" in again.text
    assert 'value="slow@example.com"' in again.text  # kept, so one press sends it
    assert row(engine, "slow@example.com") is None
    clock.advance(seconds=3)
    sign_up_again = client.post("/subscribe", data={
        "email": "slow@example.com", "form_token": field(again.text, "form_token")})
    assert "Check your inbox" in main_text(sign_up_again.text)
    assert row(engine, "slow@example.com")["status"] == "pending"


def test_one_address_may_sign_up_five_times_in_ten_minutes(site):
    _, engine, clock, client = site
    for i in range(7):
        sign_up(client, clock, f"reader{i}@example.com")
    stored = [row(engine, f"reader{i}@example.com") is not None for i in range(7)]
    assert stored == [True] * 5 + [False] * 2
    clock.advance(minutes=11)
    sign_up(client, clock, "later@example.com")
    assert row(engine, "later@example.com") is not None


def test_the_json_api_goes_through_the_same_gate(site):
    _, engine, clock, client = site
    fields = client.get("/api/subscribe").json()
    assert fields["honeypot"] == "website" and fields["altcha"] is None
    fast = client.post("/api/subscribe", json={"email": "api@example.com",
                                               "form_token": fields["form_token"]})
    assert fast.status_code == 200 and row(engine, "api@example.com") is None
    clock.advance(seconds=3)
    trap = client.post("/api/subscribe", json={"email": "api@example.com", "website": "x",
                                               "form_token": fields["form_token"]})
    assert trap.json() == fast.json() and row(engine, "api@example.com") is None
    ok = client.post("/api/subscribe", json={"email": "api@example.com", "name": "Ana",
                                             "form_token": fields["form_token"]})
    assert ok.json() == fast.json()
    assert row(engine, "api@example.com")["status"] == "pending"
    assert client.post("/api/subscribe", content=b"{not json").status_code == 400
    assert client.post("/api/subscribe", json=["a", "list"]).status_code == 400


def test_an_invalid_address_or_name_is_said_on_the_form(site):
    _, engine, clock, client = site
    bad = sign_up(client, clock, "not an address")
    assert bad.status_code == 422
    assert "Please check the email address" in bad.text and 'aria-invalid="true"' in bad.text
    assert 'value="not an address"' in bad.text
    clock.advance(minutes=11)
    name = sign_up(client, clock, "ok@example.com", name="Evil\r\nBcc: x@example.com")
    assert name.status_code == 422 and "Please check the name" in name.text
    assert row(engine, "ok@example.com") is None


def test_the_form_escapes_what_it_is_given(site):
    _, _, _, client = site
    page = client.get("/subscribe", params={"email": '"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in page.text
    assert "&#34;&gt;&lt;script&gt;" in page.text


def test_with_altcha_a_solved_challenge_is_needed_and_good_once(project, database_url):
    config = web_config(project, database_url, subscribe_captcha="altcha")
    engine = connect(database_url)
    clock = Clock()
    client = web_client(make_app(config, clock, engine=engine))
    page = client.get("/subscribe").text
    assert "/static/altcha.js" in page and "<noscript>" in page
    challenge = client.get("/api/subscribe").json()["altcha"]
    solution = altcha.solve_challenge_v1(challenge["challenge"], challenge["salt"],
                                         challenge["algorithm"], challenge["maxNumber"])
    payload = altcha.PayloadV1(challenge["algorithm"], challenge["challenge"], solution.number,
                               challenge["salt"], challenge["signature"])
    encoded = base64.b64encode(json.dumps(payload.to_dict()).encode()).decode()
    token = field(page, "form_token")
    clock.advance(seconds=3)
    without = client.post("/subscribe", data={"email": "a@example.com", "form_token": token})
    assert "Check your inbox" in main_text(without.text) and row(engine, "a@example.com") is None
    solved = client.post("/subscribe", data={"email": "b@example.com", "form_token": token,
                                             "altcha": encoded})
    assert row(engine, "b@example.com")["status"] == "pending"
    replayed = client.post("/subscribe", data={"email": "c@example.com", "form_token": token,
                                               "altcha": encoded})
    assert main_text(replayed.text) == main_text(solved.text).replace("b@", "c@")
    assert row(engine, "c@example.com") is None


def test_the_embeddable_form_may_be_framed_and_nothing_else_may(site):
    _, _, clock, client = site
    embed = client.get("/embed/subscribe")
    assert "frame-ancestors *" in embed.headers["content-security-policy"]
    assert "x-frame-options" not in embed.headers
    assert 'name="embed" value="1"' in embed.text and "masthead" not in embed.text
    clock.advance(seconds=3)
    done = client.post("/subscribe", data={"email": "e@example.com", "embed": "1",
                                           "form_token": field(embed.text, "form_token")})
    assert "frame-ancestors *" in done.headers["content-security-policy"]
    for path in ("/subscribe", "/archive", "/healthz"):
        response = client.get(path)
        assert response.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_other_sites_scripts_may_use_the_api_but_not_post_the_form(site):
    _, engine, clock, client = site
    preflight = client.options("/api/subscribe", headers={
        "Origin": "https://blog.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    fields = client.get("/api/subscribe", headers={"Origin": "https://blog.example"})
    assert fields.headers["access-control-allow-origin"] == "*"
    clock.advance(seconds=3)
    ok = client.post("/api/subscribe", headers={"Origin": "https://blog.example"},
                     json={"email": "blog@example.com", "form_token": fields.json()["form_token"]})
    assert ok.headers["access-control-allow-origin"] == "*"
    assert row(engine, "blog@example.com")["status"] == "pending"
    page = client.get("/subscribe")
    clock.advance(seconds=3)
    cross = client.post("/subscribe", headers={"Origin": "https://evil.example"},
                        data={"email": "x@example.com",
                              "form_token": field(page.text, "form_token")})
    assert cross.status_code == 403 and row(engine, "x@example.com") is None
