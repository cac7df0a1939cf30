"""`newsletter send --dry-run` and `preview` from the command line, end to end."""

import email
import re
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.audience.tokens import read_token
from newsletter.cli.main import cli
from newsletter.edition.content import load_edition

WEEK = "2026-W47"
SECRET = "test-secret-key-0123456789"


@pytest.fixture
def run(project, database_url, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def subscribe_sample(run) -> None:
    result = run("subscribers", "import", "subscribers/sample.csv")
    assert result.exit_code == 0, result.output


def test_dry_run_writes_one_valid_message_per_active_subscriber(project, run):
    subscribe_sample(run)
    assert run("subscribers", "unsubscribe", "linus@example.com").exit_code == 0
    result = run("send", "--week", WEEK, "--dry-run", "--out", "out")
    assert result.exit_code == 0, result.output
    assert "wrote 5 message(s) to out" in result.output

    files = sorted((project / "out").glob("*.eml"))
    messages = [email.message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    recipients = {m["To"].addresses[0].addr_spec for m in messages}
    assert recipients == {
        "ada@example.com", "grace@example.org", "katherine@example.net",
        "margaret@example.org", "jose@xn--bcher-kva.example",
    }
    edition = load_edition(project / "items", WEEK)
    ids, tokens = set(), set()
    for msg in messages:
        assert not msg.defects and not any(p.defects for p in msg.walk())
        for header in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Id",
                       "List-Unsubscribe", "List-Unsubscribe-Post"):
            assert msg[header], f"missing {header}"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        for item in edition.items:
            assert item.title in text and item.url in text
            assert item.title in html and f'href="{item.url}"' in html
        for marker in ("{{", "{%", "@@"):
            assert marker not in text and marker not in html
        assert "@media" in html
        assert len(html.encode()) < 102 * 1024
        token = re.search(r"/unsubscribe/([\w.-]+)>", str(msg["List-Unsubscribe"])).group(1)
        assert read_token(SECRET, "unsubscribe", token) > 0
        ids.add(msg["Message-ID"])
        tokens.add(token)
    assert len(ids) == len(tokens) == len(messages)


def test_a_name_reaches_the_greeting_and_a_missing_one_falls_back(project, run):
    subscribe_sample(run)
    run("send", "--week", WEEK, "--dry-run", "--out", "out")
    by_addr = {}
    for f in (project / "out").glob("*.eml"):
        msg = email.message_from_bytes(f.read_bytes(), policy=policy.default)
        by_addr[msg["To"].addresses[0].addr_spec] = msg.get_body(("plain",)).get_content()
    assert "Hi Ada," in by_addr["ada@example.com"]
    assert "Hi there," in by_addr["linus@example.com"]


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda p: (p / "items" / WEEK / "edition.md").unlink(), "edition.md: missing"),
        (lambda p: (p / "items" / WEEK / "02-handoffs.md").write_text("---\ntitle: [\n---\nx\n"),
         "02-handoffs.md:2: malformed front matter"),
        (lambda p: (p / "templates" / "edition.txt.j2").write_text("{{ nope }}\n"),
         "edition.txt.j2:1: 'nope' is undefined"),
    ],
)
def test_bad_input_gives_one_line_and_writes_nothing(project, run, breakage, message):
    subscribe_sample(run)
    breakage(project)
    result = run("send", "--week", WEEK, "--dry-run", "--out", "out")
    assert result.exit_code == 1
    assert message in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not (project / "out").exists()
    assert not list(project.glob(".out.partial-*"))


def test_a_missing_week_is_named(run):
    result = run("send", "--week", "2026-W02", "--dry-run", "--out", "out")
    assert result.exit_code == 1
    assert "error: no folder for week 2026-W02" in result.output


def test_preview_writes_html_and_text_beside_it(project, run):
    result = run("preview", "--week", WEEK, "--out", "pv/edition.html")
    assert result.exit_code == 0, result.output
    html = (project / "pv" / "edition.html").read_text()
    text = (project / "pv" / "edition.txt").read_text()
    assert html.startswith("<!doctype html>") or html.lower().startswith("<!doctype html>")
    assert "Hi Preview," in html and "Hi Preview," in text
    assert "Small Teams’ Long Memories" in text


def test_preview_defaults_to_the_outbox(project, run):
    result = run("preview", "--week", WEEK)
    assert result.exit_code == 0
    assert (project / "outbox" / f"{WEEK}.html").is_file()


def test_the_sample_config_runs_from_any_folder(project, run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("--config", str(project / "newsletter.toml"), "preview", "--week", WEEK)
    assert result.exit_code == 0, result.output
    assert Path(project / "outbox" / f"{WEEK}.html").is_file()
