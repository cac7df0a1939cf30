"""The check's verdict is remembered: a second send or resume of an unchanged edition, or the
send after `newsletter check`, does not check it again; any change to what the check reads
makes it check again."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.clock import utc_now
from newsletter.config import load_config
from newsletter.edition.render import render_week
from newsletter.preflight.findings import Report, error, note, warning
from newsletter.preflight.verdicts import check_before_send, fingerprint
from newsletter.store.db import connect
from newsletter.store.tables import check_verdicts

pytestmark = pytest.mark.usefixtures("engines_disposed")

WEEK = "2026-W47"
DAY = date(2026, 11, 23)
REPORT = Report.of([
    warning("links.image-alt", "1 image without alt text: „Grafik“ in 02-zoë.md", "Add alt text"),
    note("spam.score", "SpamAssassin: 0.4 of 5.0 — “fine”"),
], "2026-W47: Five things ’this’ week")


class Checks:
    """A check that counts its runs and says which content it saw."""

    def __init__(self, report=REPORT, seen=None):
        self.runs, self.report, self.seen = 0, report, seen

    def __call__(self, config, week):
        self.runs += 1
        return self.report, self.seen or render_week(config, week).content_hash


def never(config, week):
    raise AssertionError("the check ran again")


@pytest.fixture
def config(project, database_url):
    return load_config(project / "newsletter.toml",
                       environ={"NEWSLETTER_DATABASE_URL": database_url})


def verdict(config, check, *, today=DAY, content=None, **kw):
    content = content or render_week(config, WEEK).content_hash
    return check_before_send(config, WEEK, content, check=check, today=today, **kw)


def test_an_unchanged_edition_is_checked_once_and_gets_the_same_report(config):
    check = Checks()
    first = verdict(config, check)
    again = verdict(config, never)
    assert check.runs == 1
    assert first == again == REPORT
    assert [f.message for f in again.findings] == [f.message for f in REPORT.findings]
    assert again.title == REPORT.title and again.summary == "1 warning, 1 note: ready to send"


def test_a_failing_verdict_is_remembered_too(config):
    failing = Report.of([error("message.footer", "no postal address in the footer")], "x")
    verdict(config, Checks(failing))
    assert not verdict(config, never).ok


@pytest.mark.parametrize("change", ["item", "config", "day", "rules"])
def test_anything_the_check_reads_changing_makes_it_check_again(config, project, change,
                                                               monkeypatch):
    verdict(config, Checks())
    today = DAY
    if change == "item":
        item = next((project / "items" / WEEK).glob("0*.md"))
        item.write_text(item.read_text(encoding="utf-8") + "\nEin „neuer“ Satz.\n",
                        encoding="utf-8")
    elif change == "config":
        config = replace(config, postal_address="Rue de l’Église 3, 1000 Bruxelles")
    elif change == "day":
        today = DAY + timedelta(days=1)
    else:
        from newsletter.preflight import verdicts
        monkeypatch.setattr(verdicts, "_rules_digest", lambda: "other rules")
    check = Checks()
    verdict(config, check, today=today)
    assert check.runs == 1


def test_an_edition_edited_while_it_was_checked_is_checked_again(config):
    verdict(config, Checks(seen="0" * 64))  # the child rendered other content than the send's
    check = Checks()
    verdict(config, check)
    assert check.runs == 1


def test_verdicts_older_than_a_month_are_dropped_as_new_ones_come(config):
    engine = connect(config.database_url)
    verdict(config, Checks(), now=utc_now() - timedelta(days=40))
    verdict(config, Checks(), today=DAY + timedelta(days=1))
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(check_verdicts)).scalar() == 1


def test_a_database_that_cannot_keep_the_verdict_costs_a_check_not_the_send(config, caplog):
    engine = connect(config.database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE check_verdicts"))
    caplog.set_level(logging.WARNING, logger="newsletter.preflight")
    check = Checks()
    assert verdict(config, check, engine=engine) == REPORT
    assert verdict(config, check, engine=engine) == REPORT
    assert check.runs == 2
    assert "the check's verdict was not kept" in caplog.text


def test_the_fingerprint_holds_no_secret(config):
    with_key = replace(config, secret_key="s3cr3t-ключ", provider_api_key="pm-abc")
    other_key = replace(config, secret_key="another-ключ", provider_api_key="pm-abc")
    digest = fingerprint(with_key, "h" * 64, today=DAY)
    assert "s3cr3t" not in digest and len(digest) == 64
    assert digest == fingerprint(other_key, "h" * 64, today=DAY)  # only "(set)" is read


def test_newsletter_check_leaves_a_verdict_the_send_reuses(project, database_url):
    env = {"NEWSLETTER_DATABASE_URL": database_url}
    runner = CliRunner()
    assert runner.invoke(cli, ["subscribers", "count"], env=env).exit_code == 0  # a database
    result = runner.invoke(cli, ["check", "--week", WEEK], env=env)
    assert result.exit_code == 0, result.output
    config = load_config(project / "newsletter.toml", environ=env)
    content = render_week(config, WEEK).content_hash
    reused = check_before_send(config, WEEK, content, check=never)
    assert reused.summary in result.output


def test_a_check_alone_creates_no_database(project):
    assert CliRunner().invoke(cli, ["check", "--week", WEEK]).exit_code == 0
    assert not (project / "subscribers" / "newsletter.db").exists()


def test_the_real_check_in_its_child_process_is_remembered(config):
    first = verdict(config, None, today=date.today())
    assert verdict(config, never, today=date.today()) == first
