"""The welcome mail: after a confirmation on the web, exactly one, through the outbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.audience import subscribers
from newsletter.cli.main import cli
from newsletter.delivery import ledger
from newsletter.delivery.confirmations import drain_outbox
from newsletter.edition.render import render_week
from tests.web_helpers import (
    PUBLIC,
    field,
    newest_confirm_path,
    open_site,
    outbox_rows,
    read_eml,
    row,
    sign_up,
    web_client,
)

WEEK = "2026-W47"
DESCRIPTION = "Five things worth reading, chosen by José “Pepe” Núñez every Monday."


def mails(project: Path, subject: str) -> list:
    found = [read_eml(p) for p in (project / "outbox" / "confirmations").glob("*.eml")]
    return [m for m in found if subject in m["Subject"]]


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def confirm(client, path: str, times: int = 1):
    page = client.get(path)
    data = {"action": "confirm", "csrf": field(page.text, "csrf")}
    return [client.post(path, data=data) for _ in range(times)]


@pytest.fixture
def site(project, database_url):
    config, engine, clock, app = open_site(project, database_url, description=DESCRIPTION)
    return config, engine, clock, web_client(app, follow_redirects=False)


def signed_up(site, project, address: str, name: str) -> str:
    config, engine, clock, client = site
    sign_up(client, clock, address, name=name)
    assert drain_outbox(config, engine, clock=clock) == 1
    return newest_confirm_path(project)


def test_a_confirmation_brings_one_welcome_with_the_description_and_the_latest_edition(
        site, project):
    config, engine, clock, client = site
    subscribers.add(engine, "reader@bücher.example")  # a send needs someone to send to
    rendered = render_week(config, WEEK)
    ledger.open_send(engine, WEEK, rendered.content_hash, rendered.subject, "eml")
    link = signed_up(site, project, "Zoe@bücher.example", "Zoë “Zo” O’Brien")
    first, again = confirm(client, link, times=2)  # pressed twice: "already subscribed"
    assert first.status_code == again.status_code == 200
    assert "already" in again.text
    assert drain_outbox(config, engine, clock=clock) == 1
    assert drain_outbox(config, engine, clock=clock) == 0
    (welcome,) = mails(project, "Welcome to")
    assert welcome["To"].endswith("<Zoe@xn--bcher-kva.example>")
    text = text_of(welcome)
    assert "Hi Zoë," in text and DESCRIPTION in text
    assert f"{PUBLIC}/archive/{WEEK}" in text
    assert f"{PUBLIC}/manage/" in text and f"{PUBLIC}/unsubscribe/" in text
    html = welcome.get_body(("html",)).get_content()
    assert f'href="{PUBLIC}/archive/{WEEK}"' in html and "Read the latest edition" in html
    kinds = [r["kind"] for r in outbox_rows(engine)]
    assert kinds == ["confirm", "welcome"]


def test_before_any_edition_the_welcome_links_the_archive(site, project):
    config, engine, clock, client = site
    confirm(client, signed_up(site, project, "ana@bücher.example", "Ana Lúcia"))
    assert drain_outbox(config, engine, clock=clock) == 1
    (welcome,) = mails(project, "Welcome to")
    assert f"{PUBLIC}/archive\r\n" in text_of(welcome)


def test_with_welcome_off_a_confirmation_mails_nothing_more(project, database_url):
    config, engine, clock, app = open_site(project, database_url, welcome="false")
    client = web_client(app)
    sign_up(client, clock, "ana@bücher.example", name="Ana Lúcia")
    assert drain_outbox(config, engine, clock=clock) == 1
    confirm(client, newest_confirm_path(project))
    assert row(engine, "ana@bücher.example")["status"] == "active"
    assert [r["kind"] for r in outbox_rows(engine)] == ["confirm"]


def test_a_reader_who_stopped_before_the_welcome_went_out_gets_none(site, project):
    from newsletter.audience import changes

    config, engine, clock, client = site
    confirm(client, signed_up(site, project, "ana@bücher.example", "Ana Lúcia"))
    changes.unsubscribe_address(engine, "ana@bücher.example")
    assert drain_outbox(config, engine, clock=clock) == 0
    welcome = outbox_rows(engine)[-1]
    assert welcome["kind"] == "welcome" and welcome["status"] == "cancelled"
    assert welcome["error"] == "not active"


def test_a_project_s_own_welcome_template_is_used(site, project):
    config, engine, clock, client = site
    (project / "templates" / "welcome.txt.j2").write_text(
        "Willkommen, {{ recipient.first_name }}! {{ description }}\n{{ manage_url }}\n",
        encoding="utf-8")
    confirm(client, signed_up(site, project, "jose@bücher.example", "José Núñez"))
    assert drain_outbox(config, engine, clock=clock) == 1
    (welcome,) = mails(project, "Welcome to")
    assert text_of(welcome).startswith(f"Willkommen, José! {DESCRIPTION}")


# -- the CLI --------------------------------------------------------------------------------


def cli_run(project: Path, database_url: str, *args: str):
    env = {"NEWSLETTER_DATABASE_URL": database_url,
           "NEWSLETTER_OUTBOX_DIR": str(project / "outbox")}
    return CliRunner().invoke(cli, ["--config", str(project / "newsletter.toml"),
                                    "subscribers", *args], env=env)


def test_subscribers_add_welcomes_only_when_asked_and_an_import_never(project, database_url):
    from newsletter.store.db import connect

    result = cli_run(project, database_url, "add", "Zoë Ångström <zoe@bücher.example>",
                     "--welcome")
    assert result.exit_code == 0, result.output
    assert "welcome mail queued" in result.output
    assert cli_run(project, database_url, "add", "ana@bücher.example").exit_code == 0
    csv = project / "people.csv"
    csv.write_text("email,name\njose@bücher.example,José Núñez\n", encoding="utf-8")
    assert cli_run(project, database_url, "import", str(csv)).exit_code == 0
    engine = connect(database_url)
    (only,) = outbox_rows(engine)
    assert only["kind"] == "welcome"
    assert only["subscriber_id"] == row(engine, "zoe@bücher.example")["id"]


def test_subscribers_add_welcome_refuses_a_pending_subscriber(project, database_url):
    result = cli_run(project, database_url, "add", "zoe@bücher.example", "--status",
                     "pending", "--welcome")
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        "error: --welcome is for an active subscriber, not pending")
    assert "Traceback" not in result.output
