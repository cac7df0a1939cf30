"""`newsletter send --test`: the edition to yourself only, through the configured provider."""

import email
from email import policy

import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.devtools.fake_provider import FakeProvider

WEEK = "2026-W47"


@pytest.fixture
def fake():
    with FakeProvider() as server:
        yield server


def run(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_eml_test_send_writes_only_the_given_addresses(project):
    result = run("send", "--test", "--to", "me@example.com", "--to", "Bo <bo@example.org>",
                 "--week", WEEK)
    assert result.exit_code == 0, result.output
    assert "sent     me@example.com  <2026-W47.test." in result.output
    files = sorted((project / "outbox" / f"test-{WEEK}").glob("*.eml"))
    assert len(files) == 2
    msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert msg["Subject"] == "[TEST] Five Things | Small Teams’ Long Memories"
    assert not (project / "subscribers" / "newsletter.db").exists(), "no database touched"


@pytest.mark.parametrize("provider", ["postmark", "resend"])
def test_a_provider_test_send_prints_its_message_ids(project, fake, provider):
    env = {"NEWSLETTER_PROVIDER": provider, "NEWSLETTER_PROVIDER_BASE_URL": fake.base_url,
           "NEWSLETTER_PROVIDER_API_KEY": "re_key_123456", "NEWSLETTER_SECRET_KEY": "s" * 32}
    first = run("send", "--test", "--to", "me@example.com", "--week", WEEK, env=env)
    second = run("send", "--test", "--to", "me@example.com", "--week", WEEK, env=env)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    ids = [r.message_id for r in fake.records]
    assert len(ids) == 2 and ids[0] in first.output and ids[1] in second.output
    assert {r.to for r in fake.records} == {"me@example.com"}
    assert all(r.subject.startswith("[TEST] ") for r in fake.records)


def test_a_bad_address_is_named(project):
    result = run("send", "--test", "--to", "not-an-address", "--week", WEEK)
    assert result.exit_code == 1
    assert result.output.startswith("error: --to 'not-an-address': invalid address")


def test_test_needs_an_address(project):
    result = run("send", "--test", "--week", WEEK)
    assert result.exit_code == 2 and "--test needs at least one --to" in result.output


def test_a_refused_test_send_exits_non_zero(project, fake):
    env = {"NEWSLETTER_PROVIDER": "postmark", "NEWSLETTER_PROVIDER_BASE_URL": fake.base_url,
           "NEWSLETTER_PROVIDER_API_KEY": "pm-key-123456", "NEWSLETTER_SECRET_KEY": "s" * 32}
    result = run("send", "--test", "--to", "bounce@example.com", "--week", WEEK, env=env)
    assert result.exit_code == 1
    assert "failed   bounce@example.com" in result.output
    assert "error: 1 test message(s) not sent" in result.output
