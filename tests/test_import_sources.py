"""`subscribers import FILE --from mailchimp|substack|buttondown|listmonk`, and `--map`: each
service's export file as it comes (the samples in tests/data/imports, sources in SOURCES.md),
through the CLI, on both backends."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from newsletter.audience.sources import listmonk, mailchimp
from newsletter.audience.sources.base import iso_time
from newsletter.cli.main import cli
from newsletter.store import db, tables

DATA = Path(__file__).parent / "data" / "imports"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch):
    import os

    for key in list(os.environ):
        keep = key.startswith(("NEWSLETTER_TEST", "NEWSLETTER_REQUIRE"))
        if key.startswith("NEWSLETTER_") and not keep:
            monkeypatch.delenv(key)
    yield
    db.dispose_engines()  # no idle connection outlives the test's schema


@pytest.fixture
def run(database_url: str, tmp_path: Path):
    """Run `newsletter subscribers ...` against this test's database."""
    config = tmp_path / "newsletter.toml"
    config.write_text(f'database_url = "{database_url}"\n', encoding="utf-8")

    def invoke(*args: str):
        result = CliRunner().invoke(cli, ["--config", str(config), "subscribers", *args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    invoke.url = database_url
    return invoke


def sample(tmp_path: Path, name: str) -> str:
    """A copy of the sample, so its file name in messages is the sample's own."""
    return str(shutil.copy(DATA / name, tmp_path / name))


def stored(run) -> dict[str, list[tuple]]:
    """Every row the import writes, in full, by table."""
    engine = db.connect(run.url)
    out = {}
    with engine.connect() as conn:
        for table in (tables.subscribers, tables.consent_details, tables.status_changes):
            key = table.c.id if "id" in table.c else table.c.subscriber_id
            out[table.name] = [tuple(r) for r in conn.execute(sa.select(table).order_by(key))]
    return out


def by_email(run) -> dict[str, sa.Row]:
    engine = db.connect(run.url)
    s, d = tables.subscribers.c, tables.consent_details.c
    query = (sa.select(tables.subscribers, d.consent_ip)
             .select_from(tables.subscribers.outerjoin(tables.consent_details,
                                                       d.subscriber_id == s.id)))
    with engine.connect() as conn:
        return {row.email: row for row in conn.execute(query)}


def one_line_error(result, *fragments: str) -> str:
    """The command failed with exit 1 and one `error:` line, and no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for fragment in fragments:
        assert fragment in last, last
    return last


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# What each sample holds: its rows, the new subscribers per status, and the rows left out.
SAMPLES = [
    ("mailchimp", "mailchimp_subscribed.csv", 6, {"active": 5}, 1, 0),
    ("mailchimp", "mailchimp_unsubscribed.csv", 3, {"unsubscribed": 3}, 0, 0),
    ("mailchimp", "mailchimp_cleaned.csv", 2, {"bounced": 2}, 0, 0),
    ("substack", "substack_email_list.csv", 7, {"active": 4, "unsubscribed": 1}, 1, 1),
    ("buttondown", "buttondown_subscribers.csv", 8,
     {"pending": 1, "active": 3, "unsubscribed": 2}, 1, 1),
    ("listmonk", "listmonk_subscribers.csv", 7, {"active": 4, "unsubscribed": 2}, 1, 0),
]


@pytest.mark.parametrize(("service", "name", "rows", "statuses", "duplicates", "skipped"),
                         SAMPLES)
def test_each_sample_imports_with_its_counts_per_status(run, tmp_path, service, name, rows,
                                                        statuses, duplicates, skipped):
    result = run("import", sample(tmp_path, name), "--from", service)
    assert result.exit_code == 0, result.output
    added = sum(statuses.values())
    assert f"imported {added} new subscriber(s)" in result.stdout
    assert f"{rows} row(s)" in result.stdout and f"{duplicates} duplicate(s)" in result.stdout
    assert (f"{skipped} not imported" in result.stdout) == bool(skipped)
    printed = {line.split()[0]: int(line.split()[1])
               for line in result.stdout.splitlines() if line.startswith("  ")}
    assert printed == statuses
    counts = {}
    for row in by_email(run).values():
        counts[row.status] = counts.get(row.status, 0) + 1
    assert counts == statuses


@pytest.mark.parametrize(("service", "name"), [(s[0], s[1]) for s in SAMPLES])
def test_reimporting_a_sample_changes_nothing(run, tmp_path, service, name):
    path = sample(tmp_path, name)
    assert run("import", path, "--from", service).exit_code == 0
    before = stored(run)
    result = run("import", path, "--from", service)
    assert result.exit_code == 0, result.output
    assert "imported 0 new subscriber(s)" in result.stdout
    assert stored(run) == before


def test_mailchimp_keeps_the_consent_record_names_and_tags(run, tmp_path):
    assert run("import", sample(tmp_path, "mailchimp_subscribed.csv"),
               "--from", "mailchimp").exit_code == 0
    rows = by_email(run)
    jose = rows["jose@example.com"]
    assert jose.name == "José Núñez"
    assert jose.consented_at == at("2024-03-14 09:12:31")  # OPTIN_TIME
    assert jose.confirmed_at == at("2024-03-14 09:14:00")  # CONFIRM_TIME
    assert jose.created_at == at("2024-03-14 09:12:31")
    assert jose.consent_ip == "192.0.2.10"
    assert jose.source == "import:mailchimp:mailchimp_subscribed.csv"
    assert jose.attributes == {"tags": ["VIP", "Blog"]}
    zoe = rows["zoe@example.org"]
    assert zoe.name == "Zoë “Zee” O’Brien"
    assert zoe.attributes == {"phone_number": "+353 1 555 0100", "tags": ["Blog"]}
    assert rows["ada@example.com"].consent_ip == "2001:db8::1"
    # Added by hand in Mailchimp: no sign-up, so the confirmation is the consent on record.
    anna = rows["anna@bücher.example"]
    assert anna.consented_at == anna.confirmed_at == at("2022-06-01 12:00:00")
    assert anna.consent_ip is None
    assert rows["lukasz@example.pl"].name == "Łukasz Żółkiewski"


def test_mailchimp_unsubscribed_and_cleaned_files_keep_their_stop_times(run, tmp_path):
    for name in ("mailchimp_unsubscribed.csv", "mailchimp_cleaned.csv"):
        assert run("import", sample(tmp_path, name), "--from", "mailchimp").exit_code == 0
    rows = by_email(run)
    gone = rows["gone@example.net"]
    assert (gone.status, gone.unsubscribed_at) == ("unsubscribed", at("2024-05-20 07:45:10"))
    assert gone.unsubscribe_reason == ("unsubscribed in Mailchimp: I no longer want to receive "
                                       "these emails")
    assert gone.consent_ip == "192.0.2.44" and gone.name == "Brontë Ní Bhriain"
    assert rows["other@example.org"].unsubscribe_reason == ("unsubscribed in Mailchimp: "
                                                            "“Too many emails”")
    old = rows["old@example.com"]
    assert (old.status, old.unsubscribed_at) == ("bounced", at("2024-04-15 06:00:00"))
    assert "cleaned by Mailchimp" in old.unsubscribe_reason


def test_substack_buttondown_and_listmonk_rows(run, tmp_path):
    assert run("import", sample(tmp_path, "substack_email_list.csv"),
               "--from", "substack").exit_code == 0
    rows = by_email(run)
    assert rows["jose@example.com"].attributes == {"paid": True, "plan": "monthly",
                                                   "expiry": "2026-12-01T00:00:00.000Z"}
    assert rows["jose@example.com"].consented_at == at("2024-02-01 10:00:00")
    assert rows["muted@example.net"].status == "unsubscribed"
    assert not any(e.endswith("deletion-request.substack.com") for e in rows)

    other = tmp_path / "b"
    other.mkdir()
    result = run("import", sample(other, "buttondown_subscribers.csv"), "--from", "buttondown")
    assert "'bot1234@example.com': marked spammy by Buttondown; not imported" in result.stderr
    rows = by_email(run)
    assert rows["anna@bücher.example"].status == "active"  # already on the list from Substack
    assert rows["removed@example.net"].unsubscribe_reason == "removed in Buttondown"
    assert rows["gone@example.net"].status == "unsubscribed"


def test_buttondown_names_and_metadata(run, tmp_path):
    assert run("import", sample(tmp_path, "buttondown_subscribers.csv"),
               "--from", "buttondown").exit_code == 0
    rows = by_email(run)
    jose = rows["jose@example.com"]
    assert jose.name == "José Núñez"
    assert jose.attributes == {"city": "Sevilla", "notes": "Met at PyCon España",
                               "tags": ["python", "español"]}
    assert jose.consented_at == datetime(2023, 4, 1, 9, 0, 0, 123456, tzinfo=UTC)
    assert rows["zoe@example.org"].name == "Zoë “Zee” O’Brien"
    assert rows["anna@bücher.example"].status == "pending"
    assert rows["anna@bücher.example"].confirmed_at is None


def test_listmonk_times_attributes_and_statuses(run, tmp_path):
    assert run("import", sample(tmp_path, "listmonk_subscribers.csv"),
               "--from", "listmonk").exit_code == 0
    rows = by_email(run)
    assert rows["zoe@example.org"].consented_at == datetime(2023, 11, 2, 18, 0, 5, 500000,
                                                            tzinfo=UTC)
    assert rows["lukasz@example.pl"].created_at == at("2024-07-01 08:30:00")
    assert rows["anna@bücher.example"].attributes == {"plan": "pro", "projects": [1, 2]}
    blocked = rows["blocked@example.net"]
    assert (blocked.status, blocked.unsubscribed_at) == ("unsubscribed", at("2024-02-02 10:00"))
    assert rows["off@example.net"].unsubscribe_reason == "disabled in listmonk"


def test_an_imported_name_gives_recipient_first_name(run, tmp_path, project):
    from newsletter.audience import lookup
    from newsletter.config import load_config
    from newsletter.edition.render import render_week
    from newsletter.message.outgoing import prepare

    assert run("import", sample(tmp_path, "mailchimp_subscribed.csv"),
               "--from", "mailchimp").exit_code == 0
    config = load_config(project / "newsletter.toml",
                         environ={"NEWSLETTER_SECRET_KEY": "k" * 32})
    outgoing = prepare(config, render_week(config, "2026-W47"))
    firsts = {r.email: outgoing.personalize(r).values["first_name"]
              for r in lookup.iter_recipients(db.connect(run.url))}
    assert firsts["jose@example.com"] == "José"
    assert firsts["zoe@example.org"] == "Zoë"


def test_import_never_reactivates_a_stopped_address(run, tmp_path):
    path = sample(tmp_path, "mailchimp_subscribed.csv")
    run("import", path, "--from", "mailchimp")
    run("unsubscribe", "jose@example.com")
    result = run("import", path, "--from", "mailchimp")
    assert "'jose@example.com': unsubscribed; not re-subscribed" in result.stderr
    assert by_email(run)["jose@example.com"].status == "unsubscribed"


def test_dry_run_prints_the_same_and_writes_nothing(run, tmp_path):
    result = run("import", sample(tmp_path, "substack_email_list.csv"), "--from", "substack",
                 "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: would import 5 new subscriber(s)" in result.stdout
    assert "nothing written" in result.stdout
    assert "  active" in result.stdout and "  unsubscribed" in result.stdout
    assert stored(run) == {"subscribers": [], "consent_details": [], "status_changes": []}


# --------------------------------------------------------------------------- --map

SPREADSHEET = (
    "E-mailadres;Voornaam;Achternaam;Aangemeld op;IP-adres;Interne code\n"
    "sanne@bücher.example;Sanne;de Vries;2024-02-29T12:00:00+01:00;192.0.2.77;X-1\n"
    "\n"
    "joris@example.nl;Joris;van ’t Hek;;;X-2\n"
)
MAP = ("--map", "E-mailadres=email", "--map", "Voornaam=first_name",
       "--map", "Achternaam=last_name", "--map", "Aangemeld op=consented_at",
       "--map", "IP-adres=consent_ip", "--map", "Interne code=ignore")


def test_map_reads_any_csv(run, tmp_path):
    path = tmp_path / "leden.csv"
    path.write_text(SPREADSHEET, encoding="utf-8")
    result = run("import", str(path), *MAP)
    assert result.exit_code == 0, result.output
    assert "imported 2 new subscriber(s)" in result.stdout
    rows = by_email(run)
    sanne = rows["sanne@bücher.example"]
    assert sanne.name == "Sanne de Vries"
    assert sanne.consented_at == at("2024-02-29 11:00:00")
    assert sanne.consent_ip == "192.0.2.77"
    assert sanne.attributes == {}  # the ignored column is not an attribute
    assert rows["joris@example.nl"].consented_at is None  # the column is there, empty
    assert rows["joris@example.nl"].name == "Joris van ’t Hek"


@pytest.mark.parametrize(("args", "fragments"), [
    (("--map", "Geboortedatum=email"), ("leden.csv", "'Geboortedatum'", "does not have")),
    (("--map", "Voornaam=voornaam"), ("leden.csv", "unknown field 'voornaam'", "first_name")),
    (("--map", "Voornaam"), ("--map expects COLUMN=field",)),
    (("--from", "mailchimp"), ("leden.csv", "no 'Email Address' column",
                               "is it a Mailchimp export?")),
    (("--from", "constant-contact"), ("unknown source", "mailchimp, substack")),
    (("--from", "substack", "--map", "Achternaam=optin_ip"), ("unknown field 'optin_ip'",)),
])
def test_bad_map_or_missing_column_is_a_one_line_error(run, tmp_path, args, fragments):
    path = tmp_path / "leden.csv"
    path.write_text(SPREADSHEET, encoding="utf-8")
    one_line_error(run("import", str(path), *args), *fragments)
    assert stored(run)["subscribers"] == []


def test_a_bad_cell_in_an_export_names_the_line_and_column(run, tmp_path):
    text = (DATA / "mailchimp_subscribed.csv").read_text(encoding="utf-8")
    text = text.replace('"2024-03-14 09:12:31",192.0.2.10', "14/03/2024,192.0.2.999")
    path = tmp_path / "subscribed.csv"
    path.write_text(text, encoding="utf-8")
    result = run("import", str(path), "--from", "mailchimp")
    one_line_error(result, "1 invalid row(s); nothing imported")
    assert ("line 2: '14/03/2024': OPTIN_TIME is not a Mailchimp date/time "
            "(YYYY-MM-DD HH:MM:SS)") in result.stderr
    assert stored(run)["subscribers"] == []
    fixed = text.replace("14/03/2024", "2024-03-14 09:12:31")
    path.write_text(fixed, encoding="utf-8")
    result = run("import", str(path), "--from", "mailchimp")
    assert "line 2: '192.0.2.999': OPTIN_IP is not an IP address" in result.stderr


def test_a_nul_nested_in_listmonk_attributes_is_an_invalid_row(run, tmp_path):
    path = tmp_path / "subscribers.csv"
    path.write_text("uuid,email,name,attributes,status,created_at,updated_at\n"
                    'u1,nul@example.com,Nul,"{""a"": {""b"": [""x\\u0000""]}}",enabled,,\n'
                    "u2,ok@example.com,Ok,{},enabled,,\n", encoding="utf-8")
    result = run("import", str(path), "--from", "listmonk", "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "line 2:" in result.stderr and "contains a NUL character" in result.stderr
    assert set(by_email(run)) == {"ok@example.com"}


# --------------------------------------------------------------------------- date parsers

moments = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2999, 12, 31),
                       timezones=st.just(UTC))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timedelta(minutes=m))


@given(moments)
def test_mailchimp_times_read_back(moment):
    moment = moment.replace(microsecond=0)
    assert mailchimp.parse_time(moment.strftime("%Y-%m-%d %H:%M:%S")) == moment


@given(moments, offsets, st.sampled_from(["UTC", "CET", "IST", "+0530", ""]))
def test_listmonk_times_read_back_in_any_zone(moment, offset, zone):
    local = moment.astimezone(timezone(offset))
    # Go's String(): the fraction without trailing zeros, then -0700 and the abbreviation.
    fraction = f".{local.microsecond:06d}".rstrip("0").rstrip(".")
    text = f"{local:%Y-%m-%d %H:%M:%S}{fraction} {local:%z}" + (f" {zone}" if zone else "")
    assert listmonk.parse_time(text) == moment


@given(moments, offsets)
def test_iso_times_read_back(moment, offset):
    local = moment.astimezone(timezone(offset))
    assert iso_time(local.isoformat()) == moment
    assert iso_time(moment.isoformat().replace("+00:00", "Z")) == moment


@pytest.mark.parametrize("text", ["2024-03-14", "2024-03-14T09:12:31", "14/03/2024 09:12:31",
                                  "2024-02-30 10:00:00", ""])
def test_mailchimp_refuses_other_formats(text):
    with pytest.raises(ValueError):
        mailchimp.parse_time(text)
