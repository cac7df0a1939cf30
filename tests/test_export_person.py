"""`subscribers export --person EMAIL`: everything stored about one person, as JSON (a data
subject's access request), and nothing about anyone else."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from newsletter.store.tables import subscribers
from tests import person_world as pw
from tests.sending import WEEK

pytestmark = pytest.mark.usefixtures("engines_disposed")


@pytest.fixture
def world(project, database_url, tmp_path):
    return pw.build(project, database_url, tmp_path)


def export(world, *args: str) -> dict:
    result = world.subscribers_cli("export", "--person", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def times_in(value):
    """Every value of a key ending in _at, walked through the record."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("_at") and isinstance(item, str):
                yield item
            yield from times_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from times_in(item)


def test_the_export_holds_every_kind_of_record(world):
    record = export(world, pw.ASCII.upper())

    person = record["subscriber"]
    assert set(person) == set(subscribers.c.keys()), "every column of the row"
    assert (person["id"], person["email"], person["name"], person["status"]) == (
        world.person_id, pw.TYPED, pw.NAME, "active")
    assert record["consent"]["consent_ip"] == "testclient"
    assert [(c["from_status"], c["to_status"]) for c in record["status_history"]] == [
        (None, "pending"), ("pending", "active")]
    assert [(c["kind"], c["status"]) for c in record["confirmations"]] == [
        ("confirm", "sent"), ("welcome", "pending")]  # the welcome not yet drained
    assert [(d["week"], d["status"]) for d in record["deliveries"]] == [
        (WEEK, "sent"), ("2026-W48", "unknown"), ("2026-W49", "failed")]
    assert record["deliveries"][0]["message_id"] == pw.message_id_of(world, world.person_id)
    assert pw.NAME in record["deliveries"][2]["error"]
    assert [(e["kind"], e["subscriber_id"]) for e in record["events"]] == [
        ("delivered", world.person_id), ("bounced", None)], "matched and unmatched"
    assert record["events"][0]["raw"] == pw.delivered(
        pw.message_id_of(world, world.person_id), pw.ASCII), "the payload as the provider sent it"
    assert record["events"][1]["raw"]["Email"] == pw.ASCII.upper()
    (batch,) = record["stored_batches"]
    assert batch["member"] == {"id": world.person_id, "email": pw.TYPED, "name": pw.NAME,
                               "attributes": {}}
    stamps = list(times_in(record))
    assert len(stamps) > 10
    assert all(datetime.fromisoformat(s).utcoffset() is not None for s in stamps), stamps


def test_the_export_says_nothing_of_anyone_else(world):
    text = json.dumps(export(world, pw.KEY), ensure_ascii=False)
    assert pw.OTHER not in text and pw.OTHER_NAME not in text and "asa@" not in text


def test_out_writes_the_file_whole_and_says_where(world, tmp_path):
    target = tmp_path / "zoë-access-request.json"
    result = world.subscribers_cli("export", "--person", pw.KEY, "--out", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"exported what is stored about {pw.KEY} to {target}\n"
    written, printed = json.loads(target.read_text(encoding="utf-8")), export(world, pw.KEY)
    assert written | {"exported_at": None} == printed | {"exported_at": None}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temporary"


def test_an_unknown_or_erased_address_is_a_one_line_error(world, tmp_path):
    unknown = world.subscribers_cli("export", "--person", "nobody@exämple.de")
    assert unknown.exit_code == 1
    assert unknown.output == "error: no subscriber with address nobody@exämple.de\n"
    assert world.subscribers_cli("remove", pw.KEY).exit_code == 0
    erased = world.subscribers_cli("export", "--person", pw.KEY)
    assert erased.exit_code == 1 and len(erased.output.splitlines()) == 1
    assert "removed on request" in erased.output
    unwritable = world.subscribers_cli("export", "--person", pw.OTHER,
                                 "--out", str(tmp_path / "missing" / "x.json"))
    assert unwritable.exit_code == 1 and "cannot write" in unwritable.output
    both = world.subscribers_cli("export", "list.csv", "--person", pw.OTHER)
    assert both.exit_code == 2 and "--person" in both.output
