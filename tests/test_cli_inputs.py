"""Every door through the command line: hostile names and addresses, files the commands write,
configuration mistakes, the database and the disk failing. Each is one line, exit 1, no
traceback, nothing half-written."""

from __future__ import annotations

import csv
import email
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.store import db, tables

WEEK = "2026-W47"
NEWSLETTER = str(Path(sys.executable).parent / "newsletter")


def _runner(monkeypatch, database_url: str):
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)

    def invoke(*args: str, env: dict | None = None):
        result = CliRunner(env=env).invoke(cli, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


@pytest.fixture
def run(project, database_url, monkeypatch):
    """The CLI in the sample project, on SQLite and on PostgreSQL."""
    yield _runner(monkeypatch, database_url)
    db.dispose_engines()


@pytest.fixture
def run_sqlite(project, tmp_path, monkeypatch):
    """The CLI in the sample project, on SQLite only (its files are what these tests break)."""
    yield _runner(monkeypatch, f"sqlite:///{tmp_path / 'newsletter.db'}")
    db.dispose_engines()


def one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def messages(folder: Path) -> dict[str, email.message.EmailMessage]:
    out = {}
    for path in folder.glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        out[msg["To"].addresses[0].addr_spec] = msg
    return out


def count(run) -> int:
    return int(run("subscribers", "count", "--format", "json").stdout.split('"total": ')[1][:-2])


# --------------------------------------------------------------------------- names, addresses


@pytest.mark.parametrize("value", [
    "Evil\r\nBcc: x <w@example.com>",
    "Evil\x0bReply-To: attacker@evil.example\x0bX: y <v@example.com>",
    "Evil\u2028Bcc: x <u@example.com>",
    "w@example.com\r\nBcc: x@example.com",
    "\"Evil\x0cX\" <t@example.com>",
])
def test_a_control_character_in_an_address_or_name_is_refused_at_add(run, value):
    one_line_error(run("subscribers", "add", value), "control character")
    assert count(run) == 0


@pytest.mark.parametrize("name", ["Evil\x0bReply-To: a@evil.example", "Evil\u2029", "a\tb"])
def test_a_control_character_in_name_is_refused_at_add_and_import(run, project, name):
    one_line_error(run("subscribers", "add", "n@example.com", "--name", name), "the name")
    (project / "l.csv").write_text(f'email,name\nn@example.com,"{name}"\n', encoding="utf-8")
    result = run("subscribers", "import", "l.csv")
    assert result.exit_code == 1 and "line 2: " in result.stderr
    assert "the name contains a control character" in result.stderr
    assert count(run) == 0


def test_a_sharp_s_domain_is_mailed_to_its_own_idna_2008_form(run_sqlite, project):
    assert run_sqlite("subscribers", "add", "Jos\u00e9 <jose@stra\u00dfe.de>").exit_code == 0
    assert run_sqlite("send", "--week", WEEK, "--dry-run", "--out", "dr").exit_code == 0
    (to,) = messages(project / "dr")
    assert to == "jose@xn--strae-oqa.de", "not jose@strasse.de, a stranger's domain"


def test_a_non_ascii_local_part_is_refused_at_the_door(run_sqlite):
    one_line_error(run_sqlite("subscribers", "add", "jos\u00e9@example.com"), "before the @")


def test_rows_from_before_the_rules_are_reported_never_mailed(run, project, database_url):
    assert run("subscribers", "import", "subscribers/sample.csv").exit_code == 0
    engine = db.connect(database_url)
    now = sa.func.now()
    with engine.begin() as conn:
        for address, name in [("evil@example.com", "Evil\r\nBcc: x@example.com"),
                              ("vt@example.com", "V\x0bReply-To: a@evil.example"),
                              ("jos\u00e9@example.org", "Jos\u00e9")]:
            conn.execute(tables.subscribers.insert().values(
                email=address, email_key=address, name=name, status="active", source="old",
                attributes={}, created_at=now, updated_at=now))
    check = run("subscribers", "check")
    assert check.exit_code == 1
    reported = check.stdout.strip().splitlines()
    assert len(reported) == 3 and "3 subscriber(s) cannot be mailed" in check.stderr
    assert "'evil@example.com' (active): the name contains a control character" in reported[0]
    assert "before the @" in reported[2]

    result = run("send", "--week", WEEK, "--dry-run", "--out", "dr")
    assert result.exit_code == 0, result.output
    assert "wrote 6 message(s)" in result.stdout
    assert result.stderr.count("warning: not written: subscriber ") == 3
    for msg in messages(project / "dr").values():
        assert "Reply-To" not in msg or msg["Reply-To"] == "editors@fivethings.example.com"
        assert "Bcc" not in msg
    bad_id = int(reported[0].split()[1])
    assert run("subscribers", "remove", "--id", str(bad_id)).exit_code == 0
    assert len(run("subscribers", "check").stdout.strip().splitlines()) == 2


# --------------------------------------------------------------------------- files written


def test_preview_out_txt_would_overwrite_its_own_html(run_sqlite, project):
    one_line_error(run_sqlite("preview", "--week", WEEK, "--out", "p.txt"), "--out p.txt",
                   "written beside the HTML as .txt")
    assert not (project / "p.txt").exists()


def test_a_dry_run_has_its_own_folder_and_replaces_it_whole(run, project):
    assert run("subscribers", "import", "subscribers/sample.csv").exit_code == 0
    real = project / "outbox" / WEEK
    real.mkdir(parents=True)
    (real / "0000001-sent-for-real.eml").write_text("the real send's file")
    result = run("send", "--week", WEEK, "--dry-run")
    assert result.exit_code == 0, result.output
    folder = project / "outbox" / "dry-run" / WEEK
    assert f"wrote 6 message(s) to {folder}" in result.stdout
    assert [p.name for p in real.iterdir()] == ["0000001-sent-for-real.eml"]

    (folder / "stale.eml").write_text("left by an earlier run")
    assert run("subscribers", "unsubscribe", "ada@example.com").exit_code == 0
    assert run("send", "--week", WEEK, "--dry-run").exit_code == 0
    assert len(list(folder.glob("*.eml"))) == 5, "no stale file, nor the unsubscribed one"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_a_dry_run_never_replaces_a_folder_it_did_not_write(run_sqlite, project):
    (project / "mine").mkdir()
    (project / "mine" / "notes.txt").write_text("keep me")
    one_line_error(run_sqlite("send", "--week", WEEK, "--dry-run", "--out", "mine"),
                   "mine holds files a dry run did not write")
    assert (project / "mine" / "notes.txt").read_text() == "keep me"


def test_everything_written_has_one_mode(run_sqlite, project):
    old = os.umask(0o022)
    try:
        assert run_sqlite("subscribers", "add", "ada@example.com").exit_code == 0
        assert run_sqlite("subscribers", "export", "e.csv").exit_code == 0
        assert run_sqlite("preview", "--week", WEEK, "--out", "p.html").exit_code == 0
        assert run_sqlite("send", "--week", WEEK, "--dry-run", "--out", "dr").exit_code == 0
        real = run_sqlite("send", "--week", WEEK, env={"NEWSLETTER_OUTBOX_DIR": "real"})
        assert real.exit_code == 0, real.output
    finally:
        os.umask(old)
    written = [project / "e.csv", project / "p.html", project / "p.txt",
               *(project / "dr").iterdir(), *(project / "real" / WEEK).iterdir()]
    assert len(written) == 6
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {"0o644"}
    assert oct((project / "dr").stat().st_mode & 0o777) == "0o755"


# --------------------------------------------------------------------------- configuration


def test_no_config_file_says_so_and_creates_nothing(tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith("NEWSLETTER_") and not key.startswith("NEWSLETTER_TEST"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    for args in (["subscribers", "count"], ["preview"], ["send", "--dry-run"], ["db", "upgrade"]):
        result = CliRunner().invoke(cli, args)
        one_line_error(result, f"no newsletter.toml in {tmp_path}", "--config")
    assert list(tmp_path.iterdir()) == []


def test_subscriber_commands_do_not_need_the_secret_key(run_sqlite):
    env = {"NEWSLETTER_PROVIDER": "postmark", "NEWSLETTER_PROVIDER_API_KEY": "pm-key",
           "NEWSLETTER_SECRET_KEY": None}
    assert run_sqlite("subscribers", "add", "a@example.com", env=env).exit_code == 0
    one_line_error(run_sqlite("send", "--test", "--to", "me@example.com", "--week", WEEK, env=env),
                   "'secret_key' must be set")


def test_an_unknown_variable_is_a_warning_and_the_command_goes_on(run_sqlite):
    result = run_sqlite("subscribers", "count", env={"NEWSLETTER_TIMEZOEN": "UTC"})
    assert result.exit_code == 0
    assert result.stderr == ("warning: environment variable NEWSLETTER_TIMEZOEN is not a config "
                             "key, ignored; did you mean NEWSLETTER_TIMEZONE (config key "
                             "'timezone')?\n")


def test_a_file_in_the_week_folder_that_is_no_item_is_a_warning(run_sqlite, project):
    (project / "items" / WEEK / "README.md").write_text("for editors")
    result = run_sqlite("preview", "--week", WEEK)
    assert result.exit_code == 0
    assert result.stderr.startswith("warning: ") and "README.md: not an item" in result.stderr


def test_a_new_database_is_migrated_quietly_unless_verbose(project, tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'quiet.db'}")
    result = CliRunner().invoke(cli, ["send", "--week", WEEK, "--dry-run", "--out", "dr"])
    assert result.exit_code == 0 and result.stderr == ""
    db.dispose_engines()
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'loud.db'}")
    result = CliRunner().invoke(cli, ["--verbose", "subscribers", "count"])
    assert "Running upgrade" in result.stderr and result.exit_code == 0
    db.dispose_engines()


# --------------------------------------------------------------------------- CSV


def test_a_time_before_year_one_in_utc_is_a_row_error(run_sqlite, project):
    (project / "t.csv").write_text("email,consented_at\nx@example.com,0001-01-01T00:00:00+01:00\n")
    result = run_sqlite("subscribers", "import", "t.csv")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "line 2: '0001-01-01T00:00:00+01:00': consented_at is out of range" in result.stderr


def test_export_neutralizes_formulas_and_import_restores_them(run, project):
    names = ["=HYPERLINK(\"http://evil.example\")", "+1", "-2", "@SUM(A1)", "'=already", "'Tis"]
    for i, name in enumerate(names):
        assert run("subscribers", "add", f"u{i}@example.com", "--name", name).exit_code == 0
    assert run("subscribers", "add", "--attr", "note==1+1", "--", "-dash@example.com"
               ).exit_code == 0
    assert run("subscribers", "export", "e.csv").exit_code == 0
    with (project / "e.csv").open(encoding="utf-8", newline="") as fh:
        cells = [cell for row in list(csv.reader(fh))[1:] for cell in row]
    assert "'=HYPERLINK(\"http://evil.example\")" in cells and "''=already" in cells
    assert "'Tis" in cells and "'-dash@example.com" in cells and "'=1+1" in cells
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@"))]

    copy = {"NEWSLETTER_DATABASE_URL": f"sqlite:///{project / 'copy.db'}"}
    result = run("subscribers", "import", "e.csv", env=copy)
    assert result.exit_code == 0, result.output

    def listed(env=None):
        rows = json.loads(run("subscribers", "list", "--format", "json", env=env).stdout)
        return [{k: v for k, v in r.items() if k not in ("id", "updated_at")} for r in rows]

    assert listed(copy) == listed()
    assert {r["name"] for r in listed(copy)} >= set(names)


# --------------------------------------------------------------------------- database and disk


def test_a_read_only_database_is_one_line_naming_the_file(run_sqlite, project, tmp_path):
    path = tmp_path / "ro.db"
    url = f"sqlite:///{path}"
    assert run_sqlite("subscribers", "add", "a@example.com",
               env={"NEWSLETTER_DATABASE_URL": url}).exit_code == 0
    db.dispose_engines()
    if os.geteuid() == 0:  # root writes through file modes: ask SQLite for read-only instead
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    else:
        path.chmod(0o444)
    result = run_sqlite("subscribers", "add", "b@example.com", env={"NEWSLETTER_DATABASE_URL": url})
    one_line_error(result, f"{path}", "is read-only", "writable")


def test_a_lock_held_past_the_busy_timeout_is_one_line(run_sqlite, tmp_path, monkeypatch):
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}"
    assert run_sqlite("subscribers", "add", "a@example.com",
               env={"NEWSLETTER_DATABASE_URL": url}).exit_code == 0
    db.dispose_engines()
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 100)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = run_sqlite("subscribers", "add", "b@example.com",
                            env={"NEWSLETTER_DATABASE_URL": url})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    one_line_error(result, f"{path}", "is locked by another process", "run this again")


def _small_disk(limit: int):
    def apply() -> None:  # in the child: a file may grow to ``limit`` bytes, then EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_during_a_dry_run_is_one_line_and_writes_nothing(run_sqlite, project):
    assert run_sqlite("subscribers", "import", "subscribers/sample.csv").exit_code == 0
    db.dispose_engines()
    # Messages of some 100 KB, more than a file may grow to in the child; SQLite's files stay
    # below it (reading writes at most its 32 KB shared-memory index).
    (project / "items" / WEEK / "06-long.md").write_text(
        "---\ntitle: A long one\n---\n" + "Words and more words. " * 2000 + "\n")
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "k" * 32}
    proc = subprocess.run([NEWSLETTER, "send", "--week", WEEK, "--dry-run", "--out", "dr"],
                          cwd=project, env=env, capture_output=True, text=True,
                          preexec_fn=_small_disk(64_000), timeout=120)
    assert proc.returncode == 1, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: cannot write dr: File too large; free some space")
    assert "nothing was written" in line
    assert not (project / "dr").exists()
    assert not [p for p in project.iterdir() if p.name.startswith(".dr.")]


def test_a_full_disk_during_an_import_is_one_line_and_imports_nothing(project, tmp_path):
    path = tmp_path / "full.db"
    url = f"sqlite:///{path}"
    (project / "big.csv").write_text(
        "email,name\n" + "".join(f"user{i}@example.com,Name {i}\n" for i in range(20_000)))
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": url}
    subprocess.run([NEWSLETTER, "subscribers", "count"], cwd=project, env=env, check=True,
                   capture_output=True)
    proc = subprocess.run([NEWSLETTER, "subscribers", "import", "big.csv"], cwd=project,
                          env=env, capture_output=True, text=True,
                          preexec_fn=_small_disk(200_000), timeout=120)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: the database {path} cannot be written")
    assert "free some space" in line and "nothing was changed" in line
    counted = subprocess.run([NEWSLETTER, "subscribers", "count", "--format", "json"],
                             cwd=project, env=env, capture_output=True, text=True, check=True)
    assert '"total": 0' in counted.stdout


# --------------------------------------------------------------------------- noise


def test_every_fake_provider_option_is_described(capsys):
    from newsletter.devtools import fake_provider

    with pytest.raises(SystemExit):
        fake_provider.main(["--help"])
    lines = capsys.readouterr().out.split("options:\n", 1)[1].splitlines()
    blocks: list[list[str]] = []
    for line in lines:
        if line.startswith("  -"):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
    assert len(blocks) >= 17
    for block in blocks:
        described = "  " in block[0].strip() or len(block) > 1
        assert described, f"no description: {block[0].strip()}"


def test_a_real_eml_send_fails_only_the_row_that_cannot_be_mailed(run, project, database_url):
    assert run("subscribers", "import", "subscribers/sample.csv").exit_code == 0
    now = sa.func.now()
    with db.connect(database_url).begin() as conn:
        conn.execute(tables.subscribers.insert().values(
            email="evil@example.com", email_key="evil@example.com", status="active",
            name="Evil\x0bReply-To: attacker@evil.example", source="old", attributes={},
            created_at=now, updated_at=now))
    result = run("send", "--week", WEEK, env={"NEWSLETTER_SECRET_KEY": "k" * 32})
    assert result.exit_code == 0, result.output
    sent = messages(project / "outbox" / WEEK)
    assert len(sent) == 6 and "evil@example.com" not in sent
    assert all("Reply-To" not in m or "attacker" not in str(m["Reply-To"]) for m in sent.values())
    status = run("status", "--week", WEEK).stdout
    assert "6 sent, 1 failed" in status
    assert "1 failed: subscriber 7 ('evil@example.com'): the name contains a control" in status
