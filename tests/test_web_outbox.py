"""The confirmation outbox: written with the sign-up, retried, surviving a restart."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
import sqlalchemy as sa

from newsletter.delivery import confirmations
from newsletter.delivery.confirmations import drain_outbox
from newsletter.providers import make_transport
from newsletter.store.db import connect
from newsletter.store.tables import subscribers
from tests.smtp_servers import Handler
from tests.web_helpers import (
    PUBLIC,
    Clock,
    field,
    main_text,
    make_app,
    outbox_rows,
    row,
    sign_up,
    web_client,
    web_config,
)

pytest_plugins = ("tests.smtp_fixtures",)


class FakePostmark:
    """Postmark's batch endpoint as a MockTransport handler: down, then up."""

    def __init__(self):
        self.up = False
        self.mails: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            return httpx.Response(503, text="down for maintenance")
        batch = json.loads(request.content)
        self.mails.extend(batch)
        return httpx.Response(200, json=[{"ErrorCode": 0, "Message": "OK", "To": m["To"],
                                          "MessageID": f"pm-{len(self.mails)}"} for m in batch])


async def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def postmark(project, database_url):
    config = web_config(project, database_url, provider="postmark", provider_api_key="pm-key",
                        provider_base_url="https://postmark.test",
                        from_address="editors@fivethings.example.com")
    return config, connect(database_url), Clock(), FakePostmark()


def transport(config, fake):
    return make_transport(config, transport=httpx.MockTransport(fake), sleep=_no_sleep)


def test_a_failed_mail_is_retried_later_and_survives_a_restart(postmark):
    config, engine, clock, fake = postmark
    first_process = web_client(make_app(config, clock, engine=engine))
    sign_up(first_process, clock, "Zoe@example.com", name="Zoë")
    assert drain_outbox(config, engine, transport(config, fake), clock=clock) == 0
    (queued,) = outbox_rows(engine)
    assert queued["status"] == "pending" and queued["attempts"] == 1
    assert "503" in queued["error"] and queued["next_attempt_at"] > clock.now
    # The process stops; a new one (the web app restarted, or the worker) takes over.
    del first_process
    fake.up = True
    assert drain_outbox(config, engine, transport(config, fake), clock=clock) == 0  # not yet
    clock.advance(seconds=31)
    assert drain_outbox(config, engine, transport(config, fake), clock=clock) == 1
    (sent,) = outbox_rows(engine)
    assert sent["status"] == "sent" and sent["message_id"] == "pm-1"
    (mail,) = fake.mails
    assert mail["To"].endswith("<Zoe@example.com>") and "Confirm" in mail["Subject"]
    link = re.search(r"https://\S+/confirm/[\w.-]+", mail["TextBody"]).group(0)
    second_process = web_client(make_app(config, clock, engine=engine))
    path = link[len(PUBLIC):]
    page = second_process.get(path)
    second_process.post(path, data={"action": "confirm", "csrf": field(page.text, "csrf")})
    assert row(engine, "zoe@example.com")["status"] == "active"


def test_a_confirmation_goes_out_over_smtp_dot_stuffed_like_any_message(project, database_url,
                                                                        start_server):
    handler = Handler(pipelining=True)
    port = start_server(handler)
    config = web_config(project, database_url, provider="smtp", smtp_host="127.0.0.1",
                        smtp_port=port, smtp_security="none", smtp_username="",
                        smtp_password="", from_address="editors@fivethings.example.com")
    engine, clock = connect(database_url), Clock()
    sign_up(web_client(make_app(config, clock, engine=engine)), clock, "Zoe@bücher.example",
            name="Zoë “Z” Ñúñez")
    assert drain_outbox(config, engine, clock=clock) == 1
    (sent,) = outbox_rows(engine)
    assert sent["status"] == "sent"
    (mail,) = handler.messages
    assert mail["to"] == ["Zoe@xn--bcher-kva.example"]
    assert b"/confirm/" in mail["content"] and b"Subject: Confirm" in mail["content"]


def test_a_stored_address_no_mail_can_carry_fails_its_confirmation_alone(postmark):
    config, engine, clock, fake = postmark
    fake.up = True
    client = web_client(make_app(config, clock, engine=engine))
    sign_up(client, clock, "ana@bücher.example", name="Ana Lúcia")
    sign_up(client, clock, "Zoe@bücher.example", name="Zoë")
    with engine.begin() as conn:  # a row from before today's rules: a line break in it
        conn.execute(subscribers.update().where(subscribers.c.email_key == "ana@bücher.example")
                     .values(email="ana@bücher.example\r\nBcc: x@example.com"))
    assert drain_outbox(config, engine, transport(config, fake), clock=clock) == 1
    broken, sent = outbox_rows(engine)
    assert broken["status"] == "failed" and "control character" in broken["error"]
    assert sent["status"] == "sent"
    (mail,) = fake.mails
    assert mail["To"].endswith("<Zoe@xn--bcher-kva.example>")


def test_a_mail_claimed_by_a_process_that_died_is_sent_after_the_lease(postmark):
    config, engine, clock, fake = postmark
    fake.up = True
    sign_up(web_client(make_app(config, clock, engine=engine)), clock, "a@example.com")
    confirmations._claim(engine, clock.now, 10)  # claimed, then the process is killed
    assert drain_outbox(config, engine, transport(config, fake), clock=clock) == 0
    clock.advance(minutes=6)
    assert drain_outbox(config, engine, transport(config, fake), clock=clock) == 1
    assert len(fake.mails) == 1


def test_a_mail_is_given_up_after_its_attempts_and_one_refused_for_good_is_failed(postmark):
    config, engine, clock, fake = postmark
    sign_up(web_client(make_app(config, clock, engine=engine)), clock, "a@example.com")
    for _ in range(confirmations.MAX_ATTEMPTS):
        drain_outbox(config, engine, transport(config, fake), clock=clock)
        clock.advance(hours=2)
    (row_,) = outbox_rows(engine)
    assert row_["status"] == "failed" and row_["attempts"] == confirmations.MAX_ATTEMPTS


def test_a_mail_for_someone_no_longer_pending_is_cancelled(postmark):
    config, engine, clock, fake = postmark
    fake.up = True
    client = web_client(make_app(config, clock, engine=engine))
    sign_up(client, clock, "a@example.com")
    from newsletter.audience import changes, subscribers

    subscribers.remove(engine, "a@example.com")  # erased: its outbox rows go with it
    assert outbox_rows(engine) == []
    clock.advance(minutes=11)
    sign_up(client, clock, "b@example.com")
    changes.unsubscribe_address(engine, "b@example.com")
    assert drain_outbox(config, engine, transport(config, fake), clock=clock) == 0
    assert [r["status"] for r in outbox_rows(engine)] == ["cancelled"] and fake.mails == []



def test_rows_that_mailed_nobody_are_deleted_after_a_day_and_sent_ones_kept(postmark):
    """Every sign-up writes an outbox row, an already active reader's too (so that it takes
    the same time): those mail nobody, and a day later the drain deletes them."""
    config, engine, clock, fake = postmark
    fake.up = True
    client = web_client(make_app(config, clock, engine=engine))
    sign_up(client, clock, "zoe@bücher.example", name="Zoë Ångström")
    assert drain_outbox(config, engine, transport(config, fake), clock=clock) == 1
    from newsletter.audience import subscribers

    subscribers.add(engine, "jose@bücher.example", name="José “Pepe” Ñandú")
    for _ in range(3):  # someone signs an active reader up, again and again
        clock.advance(minutes=11)
        sign_up(client, clock, "jose@bücher.example")
    assert drain_outbox(config, engine, transport(config, fake), clock=clock) == 0
    assert [r["status"] for r in outbox_rows(engine)] == ["sent"] + ["cancelled"] * 3
    clock.advance(hours=23)
    drain_outbox(config, engine, transport(config, fake), clock=clock)
    assert len(outbox_rows(engine)) == 4  # kept a day, for the log
    clock.advance(hours=2)
    drain_outbox(config, engine, transport(config, fake), clock=clock)
    assert [r["status"] for r in outbox_rows(engine)] == ["sent"]
    assert len(fake.mails) == 1

def test_the_sign_up_and_its_mail_are_one_transaction(project, database_url):
    config = web_config(project, database_url)
    engine = connect(database_url)
    clock = Clock()
    with engine.begin() as conn:  # the outbox cannot be written: the sign-up must not stick
        conn.execute(sa.text("ALTER TABLE confirmations RENAME TO confirmations_gone"))
    client = web_client(make_app(config, clock, engine=engine), raise_server_exceptions=False)
    assert sign_up(client, clock, "a@example.com").status_code == 500
    assert row(engine, "a@example.com") is None


def test_the_web_process_sends_in_the_background_when_someone_signs_up(project, database_url):
    config = web_config(project, database_url)
    engine = connect(database_url)
    clock = Clock()
    app = make_app(config, clock, engine=engine)
    with web_client(app) as client:  # runs the lifespan: the background sender starts
        page = sign_up(client, clock, "bg@example.com")
        assert "Check your inbox" in main_text(page.text)
        assert app.state.outbox.sent.wait(timeout=30)
    assert [r["status"] for r in outbox_rows(engine)] == ["sent"]
    assert len(list((project / "outbox" / "confirmations").glob("*.eml"))) == 1


def test_the_web_apps_http_seam_reaches_the_providers_client(postmark):
    """The app's ``http_transport`` is the provider's HTTP client's transport, not a provider:
    a sign-up's confirmation goes to Postmark through it."""
    config, engine, clock, fake = postmark
    fake.up = True
    app = make_app(config, clock, engine=engine, transport=httpx.MockTransport(fake))
    client = web_client(app)
    sign_up(client, clock, "zoe@bücher.example", name="Zoë Ångström")
    assert asyncio.run(app.state.outbox.drain_once()) == 1
    (mail,) = fake.mails
    assert mail["To"].endswith(" <zoe@xn--bcher-kva.example>")
