"""`newsletter subscribers ...` and `newsletter db upgrade` through the CLI, on both backends."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.store import db, tables


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
    """Run the CLI against this test's database, with a config file naming it."""
    config = tmp_path / "newsletter.toml"
    config.write_text(f'database_url = "{database_url}"\n', encoding="utf-8")

    def invoke(*args: str):
        result = CliRunner().invoke(cli, ["--config", str(config), "subscribers", *args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    invoke.url = database_url
    return invoke


def write(path: Path, text: str, encoding: str = "utf-8") -> str:
    path.write_bytes(text.encode(encoding))
    return str(path)


def one_line_error(result, *fragments: str) -> str:
    """The command failed with exit 1 and one `error:` line, and no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for fragment in fragments:
        assert fragment in last, last
    return last


def counts(run) -> dict[str, int]:
    result = run("count", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def listed(run, *args: str) -> list[dict]:
    result = run("list", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- add / show / list


def test_add_then_show_list_and_count(run):
    result = run("add", "Ada@Example.com", "--name", "Ada Lovelace")
    assert result.exit_code == 0
    assert "added Ada@Example.com (active)" in result.stdout
    assert run("add", "grace@example.com", "--status", "pending").exit_code == 0

    show = run("show", "ada@example.COM").stdout  # any case finds it
    assert "Ada@Example.com" in show  # shown as given
    assert "Ada Lovelace" in show
    assert "source:             cli" in show

    table = run("list").stdout
    assert "Ada@Example.com" in table and "grace@example.com" in table and "pending" in table

    rows = listed(run)
    assert [r["email"] for r in rows] == ["Ada@Example.com", "grace@example.com"]
    assert rows[0]["consented_at"] and rows[0]["confirmed_at"]
    assert rows[1]["confirmed_at"] is None  # pending: not confirmed yet

    assert counts(run) == {
        "pending": 1, "active": 1, "unsubscribed": 0, "bounced": 0, "complained": 0, "total": 2
    }
    text = run("count").stdout
    assert "active" in text and "total" in text


def test_add_name_addr_form_and_attributes(run):
    assert run("add", "Linus <linus@example.com>", "--attr", "City=Helsinki").exit_code == 0
    (row,) = listed(run)
    assert row["email"] == "linus@example.com"
    assert row["name"] == "Linus"
    assert row["attributes"] == {"city": "Helsinki"}


def test_add_refuses_duplicate_in_any_case(run):
    run("add", "ada@example.com")
    one_line_error(run("add", "ADA@example.com"), "already on the list")
    assert counts(run)["total"] == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["not-an-address"], "invalid address"),
        (["a@b@example.com"], "invalid address"),
        (["ada@example.com", "--status", "bogus"], "unknown status 'bogus'"),
        (["ada@example.com", "--status", "unsubscribed"], "unknown status"),
        (["ada@example.com", "--name", "two\nlines"], "line break"),
    ],
)
def test_add_bad_input_is_one_line_and_writes_nothing(run, args, fragment):
    one_line_error(run("add", *args), fragment)
    assert counts(run)["total"] == 0


def test_add_accepts_internationalized_domain_in_either_form(run):
    assert run("add", "jo@bücher.example").exit_code == 0
    one_line_error(run("add", "JO@xn--bcher-kva.example"), "already on the list")


def test_list_filters_and_csv_format(run):
    run("add", "a@example.com")
    run("add", "b@example.com", "--status", "pending")
    assert [r["email"] for r in listed(run, "--status", "pending")] == ["b@example.com"]
    rows = list(csv.DictReader(io.StringIO(run("list", "--format", "csv").stdout)))
    assert [r["email"] for r in rows] == ["a@example.com", "b@example.com"]
    assert rows[1]["status"] == "pending"


def test_list_unknown_status_is_an_error(run):
    one_line_error(run("list", "--status", "gone"), "unknown status 'gone'")
    one_line_error(run("export", "x.csv", "--status", "gone"), "unknown status")


def test_list_empty(run):
    assert "no subscribers" in run("list").stdout
    assert listed(run) == []


def test_show_unknown_address(run):
    one_line_error(run("show", "nobody@example.com"), "no subscriber with address nobody@")


# --------------------------------------------------------------------------- unsubscribe / remove


def test_unsubscribe_is_recorded_and_idempotent(run):
    run("add", "ada@example.com")
    result = run("unsubscribe", "ADA@example.com")
    assert result.exit_code == 0 and "unsubscribed" in result.stdout
    (row,) = listed(run)
    assert row["status"] == "unsubscribed"
    assert row["unsubscribed_at"] and row["unsubscribe_reason"] == "unsubscribed via CLI"
    again = run("unsubscribe", "ada@example.com")
    assert again.exit_code == 0 and "already unsubscribed" in again.stdout
    assert listed(run)[0]["unsubscribed_at"] == row["unsubscribed_at"]
    one_line_error(run("unsubscribe", "nobody@example.com"), "no subscriber")


def test_unsubscribed_address_is_never_resubscribed(run, tmp_path):
    run("add", "ada@example.com")
    run("unsubscribe", "ada@example.com")
    one_line_error(run("add", "Ada@Example.com"), "unsubscribed; not re-subscribed")
    path = write(tmp_path / "list.csv", "email\nada@example.com\nnew@example.com\n")
    result = run("import", path)
    assert result.exit_code == 0
    assert "line 2: 'ada@example.com': unsubscribed; not re-subscribed" in result.stderr
    assert {r["email"]: r["status"] for r in listed(run)} == {
        "ada@example.com": "unsubscribed", "new@example.com": "active"
    }


def test_remove_erases_personal_data_and_keeps_a_hash(run, tmp_path):
    run("add", "Ada <Ada@Example.com>", "--attr", "city=London")
    run("add", "keep@example.com")
    result = run("remove", "ada@example.com")
    assert result.exit_code == 0 and "erased" in result.stdout

    engine = db.connect(run.url)
    with engine.connect() as conn:
        dump = repr(conn.execute(sa.select(tables.subscribers)).all()).lower()
        hashes = conn.execute(sa.select(tables.suppressions.c.email_hash)).scalars().all()
    assert "ada" not in dump and "london" not in dump
    assert hashes == [hashlib.sha256(b"ada@example.com").hexdigest()]

    one_line_error(run("show", "ada@example.com"), "removed on request")
    one_line_error(run("add", "ADA@example.com"), "removed on request; not re-subscribed")
    path = write(tmp_path / "list.csv", "email,name\nada@example.com,Ada\n")
    result = run("import", path)
    assert result.exit_code == 0
    assert "address was removed on request; not re-subscribed" in result.stderr
    assert [r["email"] for r in listed(run)] == ["keep@example.com"]

    again = run("remove", "ada@example.com")
    assert again.exit_code == 0 and "already removed" in again.stdout
    one_line_error(run("remove", "nobody@example.com"), "no subscriber")


def test_ids_are_never_reused_after_remove(run):
    run("add", "a@example.com")
    run("add", "b@example.com")
    run("remove", "b@example.com")
    run("add", "c@example.com")
    assert [r["id"] for r in listed(run)] == [1, 3]


# --------------------------------------------------------------------------- import


SAMPLE = (
    "\ufeffEmail;Name;City;Plan\n"
    "ada@example.com;Ada;London;pro\n"
    "\n"
    '"Grace Hopper <grace@example.com>";;Arlington;\n'
    "jo@bücher.example;Jo;Berlin;free\n"
)


def test_import_bom_semicolon_name_addr_and_attributes(run, tmp_path):
    result = run("import", write(tmp_path / "list.csv", SAMPLE))
    assert result.exit_code == 0, result.output
    assert "imported 3 new subscriber(s)" in result.stdout
    rows = {r["email"]: r for r in listed(run)}
    assert set(rows) == {"ada@example.com", "grace@example.com", "jo@bücher.example"}
    assert rows["grace@example.com"]["name"] == "Grace Hopper"
    assert rows["grace@example.com"]["attributes"] == {"city": "Arlington"}
    assert rows["ada@example.com"]["attributes"] == {"city": "London", "plan": "pro"}
    assert rows["ada@example.com"]["source"] == "import:list.csv"
    assert rows["ada@example.com"]["status"] == "active"


def test_reimport_changes_nothing(run, tmp_path):
    path = write(tmp_path / "list.csv", SAMPLE)
    run("import", path)
    before = run("list", "--format", "csv").stdout
    result = run("import", path)
    assert result.exit_code == 0
    assert "imported 0 new subscriber(s)" in result.stdout
    assert "3 already on the list" in result.stdout
    assert run("list", "--format", "csv").stdout == before


def test_import_invalid_rows_abort_everything_with_a_full_report(run, tmp_path):
    text = (
        "email,name\nok@example.com,Ok\nnot-an-address,X\nfine@example.com,F\n,empty\n"
        "x@@y.com,Z\n"
    )
    result = run("import", write(tmp_path / "list.csv", text))
    one_line_error(result, "3 invalid row(s); nothing imported", "--skip-invalid")
    report = result.stderr
    assert "line 3: 'not-an-address': invalid address" in report
    assert "line 5: '': empty address" in report
    assert "line 6: 'x@@y.com': invalid address" in report
    assert counts(run)["total"] == 0


def test_import_skip_invalid_imports_the_rest_and_reports(run, tmp_path):
    text = (
        "email,status\nok@example.com,\nnot-an-address,\nfine@example.com,maybe\n"
        "yes@example.com,pending\n"
    )
    result = run("import", write(tmp_path / "list.csv", text), "--skip-invalid")
    assert result.exit_code == 0
    assert "line 3: 'not-an-address': invalid address" in result.stderr
    assert "line 4: 'maybe': unknown status" in result.stderr
    assert "2 invalid skipped" in result.stdout
    assert {r["email"]: r["status"] for r in listed(run)} == {
        "ok@example.com": "active", "yes@example.com": "pending"
    }


def test_import_dry_run_writes_nothing(run, tmp_path):
    result = run("import", write(tmp_path / "list.csv", SAMPLE), "--dry-run")
    assert result.exit_code == 0
    assert "dry run: would import 3 new subscriber(s)" in result.stdout
    assert counts(run)["total"] == 0


def test_import_duplicate_in_file_counted_once_and_reported(run, tmp_path):
    text = "email,name\nada@example.com,Ada\nADA@example.com,Other\nbob@example.com,Bob\n"
    result = run("import", write(tmp_path / "list.csv", text))
    assert result.exit_code == 0
    assert "line 3: 'ADA@example.com': duplicate of line 2; counted once" in result.stderr
    assert "imported 2 new subscriber(s)" in result.stdout
    assert {r["email"]: r["name"] for r in listed(run)} == {
        "ada@example.com": "Ada", "bob@example.com": "Bob"
    }


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "file not found"),
        (b"email\nj\xe9r\xf4me@example.com\n", "not UTF-8 text (byte 0xE9 on line 2)"),
        ("email\nada@example.com\n".encode("utf-16"), "UTF-16"),
        (b"", "is empty"),
        (b"ada@example.com,Ada\n", "no header row"),
        (b",", "only empty cells"),
        (b",,\n , \n", "only empty cells"),
        (b"name,city\nAda,London\n", "no 'email' column"),
        (b"email,city,City\nada@example.com,a,b\n", "duplicate column 'City'"),
        (b"email\n\"unterminated@example.com\n", "not valid CSV"),
        (b"email\nada@example.com\nx\0y@example.com\n", "NUL byte on line 3"),
    ],
)
def test_import_bad_files_are_one_line_errors(run, tmp_path, content, fragment):
    path = tmp_path / "list.csv"
    if content is not None:
        path.write_bytes(content)
    one_line_error(run("import", str(path)), fragment)
    assert counts(run)["total"] == 0


def test_import_bad_row_values(run, tmp_path):
    text = (
        "email,status,consented_at,name\n"
        "a@example.com,gone,,\n"
        "b@example.com,active,yesterday,\n"
        "c@example.com,active,,\"two\nlines\"\n"
    )
    result = run("import", write(tmp_path / "list.csv", text))
    one_line_error(result, "3 invalid row(s)")
    assert "line 2: 'gone': unknown status" in result.stderr
    assert "line 3: 'yesterday': consented_at is not an ISO 8601 date/time" in result.stderr
    assert ("line 4: 'two\\nlines': the name contains a control character (a line break"
            in result.stderr)
    assert counts(run)["total"] == 0


def test_import_through_environment_variable(database_url, tmp_path):
    path = write(tmp_path / "list.csv", "email\nada@example.com\n")
    env = {"NEWSLETTER_DATABASE_URL": database_url}
    runner = CliRunner(env=env)
    result = runner.invoke(cli, ["subscribers", "import", path])
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["subscribers", "show", "ada@example.com"]).exit_code == 0


# --------------------------------------------------------------------------- export


def test_export_then_import_into_empty_database_round_trips(run, tmp_path):
    run("add", "Ada <ada@example.com>", "--attr", "city=London")
    run("add", "pending@example.com", "--status", "pending")
    run("add", "gone@example.com")
    run("unsubscribe", "gone@example.com")
    run("import", write(tmp_path / "in.csv", SAMPLE))
    export = tmp_path / "out.csv"
    result = run("export", str(export))
    assert result.exit_code == 0 and "exported 5 subscriber(s)" in result.stdout
    original = listed(run)

    other = tmp_path / "other"
    other.mkdir()
    config = other / "newsletter.toml"
    config.write_text('database_url = "sqlite:///copy.db"\n', encoding="utf-8")
    base = ["--config", str(config), "subscribers"]
    result = CliRunner().invoke(cli, [*base, "import", str(export)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, [*base, "list", "--format", "json"])
    copy = json.loads(result.stdout)

    def comparable(rows):
        return [{k: v for k, v in r.items() if k not in ("id", "updated_at")} for r in rows]

    assert comparable(copy) == comparable(original)


def test_export_status_filter_and_atomic_write(run, tmp_path):
    run("add", "a@example.com")
    run("add", "b@example.com", "--status", "pending")
    path = tmp_path / "pending.csv"
    assert run("export", str(path), "--status", "pending").exit_code == 0
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [r["email"] for r in rows] == ["b@example.com"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pending.csv")]
    one_line_error(run("export", str(tmp_path / "missing" / "x.csv")), "cannot write")


# --------------------------------------------------------------------------- db upgrade


def test_db_upgrade_command(database_url, tmp_path):
    config = tmp_path / "newsletter.toml"
    config.write_text(f'database_url = "{database_url}"\n', encoding="utf-8")
    first = CliRunner().invoke(cli, ["--config", str(config), "db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert f"upgraded from empty to {db.head_revision()}" in first.stdout
    again = CliRunner().invoke(cli, ["--config", str(config), "db", "upgrade"])
    assert "up to date" in again.stdout


def test_unreachable_or_unsupported_database_is_one_line(tmp_path):
    for url, fragment in [
        ("mysql://localhost/x", "database_url must be sqlite"),
        ("postgresql://nobody:secret@127.0.0.1:1/none", "cannot connect"),
    ]:
        result = CliRunner(env={"NEWSLETTER_DATABASE_URL": url}).invoke(
            cli, ["subscribers", "count"]
        )
        line = one_line_error(result, fragment)
        assert "secret" not in line
