"""`subscribers remove`: no trace of the address or the name is left in the database or the
outbox, except the suppression hash; the counts of the sends and the other reader survive."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.delivery import ledger
from newsletter.store.tables import (
    batches,
    consent_details,
    deliveries,
    events,
    status_changes,
    subscribers,
    suppressions,
)
from tests import person_world as pw

pytestmark = pytest.mark.usefixtures("engines_disposed")


@pytest.fixture
def world(project, database_url, tmp_path):
    return pw.build(project, database_url, tmp_path)


def remove(world, *args: str):
    """`newsletter subscribers remove ...` as the operator runs it."""
    return world.subscribers_cli("remove", *args)


def snapshot(world, subscriber_id: int) -> dict:
    """What is stored about one reader, table by table."""
    with world.engine.connect() as conn:
        def rows(table, column):
            return [dict(r._mapping) for r in conn.execute(
                sa.select(table).where(column == subscriber_id).order_by(*table.primary_key))]
        return {"subscriber": rows(subscribers, subscribers.c.id),
                "consent": rows(consent_details, consent_details.c.subscriber_id),
                "history": rows(status_changes, status_changes.c.subscriber_id),
                "deliveries": rows(deliveries, deliveries.c.subscriber_id),
                "events": rows(events, events.c.subscriber_id)}


def outbox_files(world):
    return pw.files_under(world.project / "outbox", world.elsewhere)


def test_remove_leaves_no_trace_of_the_person_but_the_hash(world, database_url):
    other_before = snapshot(world, world.other_id)
    counts_before = {week: ledger.counts(world.engine, sid) for week, sid in world.sends.items()}
    history = len(snapshot(world, world.person_id)["history"])
    theirs = [p for p in outbox_files(world) if pw.addressed_to(p, pw.ASCII)]
    others = [p for p in outbox_files(world) if p not in theirs]
    assert len(theirs) == 4, "a confirmation, two dry runs, the week's send"
    assert pw.found_in(pw.database_dump(database_url, world.engine)), "the world names her"

    result = remove(world, "ZOE.ANGSTROM@xn--exmple-cua.de", "--outbox", str(world.elsewhere))

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "removed ZOE.ANGSTROM@xn--exmple-cua.de: personal data erased, address suppressed "
        "(as a hash)",
        f"erased: 1 subscriber row, 1 consent record, {history} status changes, "
        "2 confirmation mails, 3 deliveries anonymized, 1 stored batch dropped, "
        "2 events anonymized, 4 outbox files",
    ]
    dump = pw.database_dump(database_url, world.engine)
    assert pw.found_in(dump) == []
    for path in outbox_files(world):
        assert pw.found_in("\n".join(pw.file_texts(path))) == [], path
    assert not any(p.exists() for p in theirs)
    assert all(p.exists() for p in others), "nobody else's file goes"

    with world.engine.connect() as conn:
        hashes = conn.execute(sa.select(suppressions.c.email_hash)).scalars().all()
        kept = conn.execute(sa.select(batches.c.members)
                            .where(batches.c.send_id == world.sends["2026-W48"])).scalar()
    assert hashes == [hashlib.sha256(pw.KEY.encode()).hexdigest()]
    assert kept is None, "the batch cannot be repeated as it was: its members are gone"
    assert snapshot(world, world.other_id) == other_before
    # The sends' figures are what they were: her rows are still counted, as nobody's.
    assert {week: ledger.counts(world.engine, sid)
            for week, sid in world.sends.items()} == counts_before
    erased = snapshot(world, world.person_id)
    assert erased["subscriber"] == erased["consent"] == erased["history"] == []
    assert [e["kind"] for e in erased["events"]] == ["delivered"]
    assert [d["status"] for d in erased["deliveries"]] == ["sent", "unknown", "failed"]


def test_the_erased_address_is_refused_and_what_names_it_later_is_erased_again(world,
                                                                              database_url):
    assert remove(world, pw.KEY).exit_code == 0
    again = remove(world, pw.TYPED)
    assert again.exit_code == 0
    assert again.output.splitlines() == [f"{pw.TYPED} was already removed; nothing changed"]

    # A late bounce names her again (a provider reports days later): it is stored, for the
    # send's figures, but without her address or name, as if it had come before the erasure.
    with world.engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar()
    world.post_webhook(pw.bounced(2, pw.KEY, f"smtp;550 {pw.NAME} <{pw.ASCII}> is gone"))
    with world.engine.connect() as conn:
        late = conn.execute(sa.select(events).order_by(events.c.id.desc())).first()
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == before + 1
    assert late.kind == "bounced" and late.recipient == "[erased]"
    assert pw.found_in(pw.database_dump(database_url, world.engine)) == []
    assert remove(world, pw.KEY).output.splitlines() == [
        f"{pw.KEY} was already removed; nothing changed"]


def test_remove_by_id_erases_the_same_everywhere(world, database_url):
    result = remove(world, "--id", str(world.person_id), "--outbox", str(world.elsewhere))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        f"removed id {world.person_id} ({pw.TYPED!r}): personal data erased, address "
        "suppressed (as a hash)")
    assert "4 outbox files" in result.output
    assert pw.found_in(pw.database_dump(database_url, world.engine)) == []
    for path in outbox_files(world):
        assert pw.found_in("\n".join(pw.file_texts(path))) == [], path


def test_without_outbox_the_folder_outside_the_outbox_keeps_its_file(world):
    """Only the folders named are searched: a dry run's --out must be named with --outbox."""
    result = remove(world, pw.KEY)
    assert result.exit_code == 0 and "3 outbox files" in result.output
    assert [p.name for p in pw.files_under(world.elsewhere) if pw.addressed_to(p, pw.ASCII)]


def test_bad_input_is_one_line_and_changes_nothing(world, tmp_path):
    before = snapshot(world, world.person_id)
    missing = remove(world, pw.KEY, "--outbox", str(tmp_path / "no-such-folder"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    nobody = remove(world, "nobody@exämple.de")
    assert nobody.exit_code == 1
    assert nobody.output.strip() == "error: no subscriber with address nobody@exämple.de"
    assert remove(world).exit_code == 2
    assert snapshot(world, world.person_id) == before


def test_a_file_holding_other_people_too_is_reported_not_deleted(world, tmp_path):
    """A CSV export of the whole list under a searched folder is the operator's to edit; the
    database file in it is never touched."""
    listing = world.project / "outbox" / "list.csv"
    env = {"NEWSLETTER_DATABASE_URL": world.config.database_url}
    exported = CliRunner().invoke(cli, ["subscribers", "export", str(listing)], env=env)
    assert exported.exit_code == 0, exported.output
    result = remove(world, pw.KEY, "--outbox", str(tmp_path))  # holds the SQLite file too
    assert result.exit_code == 0, result.output
    assert f"warning: {listing} names the address but is not a message" in result.stderr
    assert "4 outbox files" in result.stdout
    assert pw.OTHER in listing.read_text(encoding="utf-8")
    assert snapshot(world, world.other_id)["subscriber"], "the database is whole"
