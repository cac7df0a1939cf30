"""`newsletter new`: a week's folder of stubs to fill in, the week chosen sensibly, and a week
that was sent never written over."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import load_config
from newsletter.delivery.ledger.sends import open_send, sends_of_week
from newsletter.edition.content import load_edition
from newsletter.errors import ContentError
from newsletter.project import weeks
from newsletter.store.db import connect

ITEMS = {"headline": "H", "items": [{"title": "T", "body": "B"}]}


def new(*args, input=None):
    return CliRunner().invoke(cli, ["new", *args], input=input)


def test_new_writes_an_edition_and_numbered_stubs_with_every_field(project):
    result = new("--week", "2026-W49", "--items", "3")
    assert result.exit_code == 0, result.output
    folder = project / "items" / "2026-W49"
    assert sorted(p.name for p in folder.iterdir()) == [
        "01-item.md", "02-item.md", "03-item.md", "edition.md"]
    edition_md = (folder / "edition.md").read_text()
    for field in ("headline:", "dek:", "preheader:", "subject:"):
        line = next(x for x in edition_md.splitlines() if x.startswith(field))
        assert " # " in line, f"{field} has a comment"
    item_md = (folder / "02-item.md").read_text()
    for field in ("title:", "take:", "source:", "url:"):
        line = next(x for x in item_md.splitlines() if x.startswith(field))
        assert " # " in line, f"{field} has a comment"
    assert "Item 2." in item_md


def test_a_stub_is_not_an_edition_until_it_is_filled_in(project):
    new("--week", "2026-W49", "--items", "1")
    folder = project / "items" / "2026-W49"
    with pytest.raises(ContentError, match=r"edition\.md: missing required field 'headline'"):
        load_edition(project / "items", "2026-W49")
    edition = folder / "edition.md"
    edition.write_text(edition.read_text().replace("headline:  ", "headline: Ready  ", 1))
    with pytest.raises(ContentError, match=r"01-item\.md: missing required field 'title'"):
        load_edition(project / "items", "2026-W49")
    stub = folder / "01-item.md"
    stub.write_text(stub.read_text().replace("title:  ", "title: Done.  ", 1) + "The body.\n")
    loaded = load_edition(project / "items", "2026-W49")
    assert loaded.headline == "Ready" and loaded.items[0].title == "Done."
    assert loaded.items[0].take == "" and loaded.items[0].url == ""  # comments are not values


def test_the_default_is_five_stubs_and_an_existing_folder_needs_force(project):
    assert new("--week", "2026-W49").exit_code == 0
    assert len(list((project / "items" / "2026-W49").glob("0*-item.md"))) == 5
    again = new("--week", "2026-W49", "--items", "2")
    assert again.exit_code == 1 and "exists; give --force to replace it" in again.output
    assert new("--week", "2026-W49", "--items", "2", "--force").exit_code == 0
    assert len(list((project / "items" / "2026-W49").glob("0*-item.md"))) == 2


def test_bad_weeks_and_counts_are_one_line(project):
    assert "2026 has no week 60" in new("--week", "2026-W60").output
    assert new("--items", "0").exit_code == 2
    assert not any(p.name.startswith(".new-") for p in (project / "items").iterdir())


# -- which week --------------------------------------------------------------------------------

def config_for(project, **env):
    environ = {f"NEWSLETTER_{k.upper()}": v for k, v in env.items()}
    return load_config(project / "newsletter.toml", environ=environ)


def test_the_default_week_is_the_next_sends_or_the_first_free_after_it(project):
    config = config_for(project, schedule="0 8 * * mon", timezone="Europe/Berlin")
    never = lambda week: False  # noqa: E731
    # Tuesday 2026-11-17: the next send is Monday 23 November, week 48.
    tuesday = datetime(2026, 11, 17, 10, 0, tzinfo=UTC)
    assert weeks.target_week(config, None, "", never, tuesday) == "2026-W48"
    # Monday 16 November 06:00 UTC is 07:00 in Berlin, before that day's 08:00 send.
    monday = datetime(2026, 11, 16, 6, 0, tzinfo=UTC)
    assert weeks.target_week(config, None, "", never, monday) == "2026-W48"  # W47 has a folder
    (project / "items" / "2026-W48").mkdir()
    assert weeks.target_week(config, None, "", never, tuesday) == "2026-W49"
    sent = {"2026-W49"}.__contains__
    assert weeks.target_week(config, None, "", sent, tuesday) == "2026-W50"
    assert weeks.week_after("2026-W53") == "2027-W01"


def test_new_without_a_week_takes_the_next_free_one(project):
    config = config_for(project)
    before = weeks.target_week(config, None, "", lambda w: False)
    result = new("--items", "1")
    after = weeks.target_week(config, None, "", lambda w: False)
    assert result.exit_code == 0, result.output
    written = [p.name for p in (project / "items").iterdir() if p.name != "2026-W47"]
    assert len(written) == 1 and written[0] in (before, after)


# -- a week that was sent ----------------------------------------------------------------------

@pytest.fixture
def with_db(project, database_url, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    return connect(database_url)


@pytest.mark.parametrize("status", ["sending", "done", "aborted", "cancelled"])
def test_a_week_with_a_send_in_the_ledger_is_never_written(project, with_db, status):
    engine = with_db
    _start_send(engine, "2026-W47", status)
    assert sends_of_week(engine, "2026-W47")[0].status == status
    before = (project / "items" / "2026-W47" / "edition.md").read_bytes()
    for args in (["--week", "2026-W47", "--force"], ["--week", "2026-W47"]):
        result = new(*args)
        assert result.exit_code == 1
        assert "2026-W47 has been sent" in result.output
    result = new("--from", "-", "--week", "2026-W47", "--force",
                 input=json.dumps(ITEMS).encode())
    assert result.exit_code == 1 and "has been sent" in result.output
    assert (project / "items" / "2026-W47" / "edition.md").read_bytes() == before


def _start_send(engine, week: str, status: str):
    import sqlalchemy as sa

    from newsletter.audience import subscribers
    from newsletter.store.tables import sends

    subscribers.add(engine, "Zoë <zoe@bücher.example>")
    record, _ = open_send(engine, week, "0" * 64, "Five Things | A week", "eml")
    with engine.begin() as conn:
        conn.execute(sa.update(sends).where(sends.c.id == record.id).values(status=status))


def test_the_ledger_check_sees_sends_in_any_state(project, database_url, with_db):
    sent = weeks.sent_checker(config_for(project, database_url=database_url))
    _start_send(with_db, "2026-W48", "cancelled")
    assert sent("2026-W48") and not sent("2026-W49")


def test_new_does_not_create_a_database_to_find_out(project):
    assert new("--week", "2026-W49", "--items", "1").exit_code == 0
    assert not any(Path(project / "subscribers").glob("*.db"))
