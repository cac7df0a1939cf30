"""The small doors of issue 20: bytes that are not UTF-8 in the config file or the environment,
a week with a line break, a password in the database URL's query string, the SQLite file's
mode, and secrets written into newsletter.toml."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.cli.main import cli
from newsletter.config import load_config
from newsletter.store import db
from newsletter.store.db import safe_url
from newsletter.worker.job import Worker
from newsletter.worker.service import log_start

WEEK = "2026-W47"
NEWSLETTER = str(Path(sys.executable).parent / "newsletter")


def invoke(*args: str, env: dict | None = None):
    result = CliRunner(env=env).invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def one_line_error(stderr: str, exit_code: int, *fragments: str) -> str:
    assert exit_code == 1, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def sqlite_project(project, tmp_path, monkeypatch):
    """The sample project on a SQLite file of its own."""
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'newsletter.db'}")
    yield project
    db.dispose_engines()


# --------------------------------------------------------------------------- bytes, not text


def test_a_config_file_that_is_not_utf8_names_the_file_and_line(sqlite_project):
    config = sqlite_project / "newsletter.toml"
    text = config.read_bytes().replace(b'name = "Five Things"', b'name = "Caf\xff Cr\xe8me"')
    line = text[:text.index(b"\xff")].count(b"\n") + 1
    config.write_bytes(text)
    result = invoke("subscribers", "count")
    one_line_error(result.stderr, result.exit_code, "newsletter.toml", f"line {line}", "UTF-8")


def _run_with_environ(project: Path, extra: dict[bytes, bytes], *args: str):
    """``newsletter`` in a real process, given environment values as raw bytes."""
    env = {k: v for k, v in os.environb.items()
           if not k.startswith(b"NEWSLETTER_") or k.startswith(b"NEWSLETTER_TEST")}
    env.update(extra)
    return subprocess.run([NEWSLETTER, *args], cwd=project, env=env, capture_output=True,
                          timeout=120)


@pytest.mark.parametrize(("variable", "args"), [
    (b"NEWSLETTER_SECRET_KEY", ("send", "--dry-run", "--week", WEEK, "--out", "dr")),
    (b"NEWSLETTER_SMTP_PASSWORD", ("subscribers", "count")),
])
def test_a_secret_that_is_not_utf8_is_one_line_and_not_shown(project, tmp_path, variable, args):
    secret = "clé-très-secrète".encode() + b"\xff" + b"-tail"
    result = _run_with_environ(project, {
        variable: secret,
        b"NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}".encode(),
    }, *args)
    stderr = result.stderr.decode("utf-8", "backslashreplace")
    one_line_error(stderr, result.returncode, variable.decode(), "UTF-8")
    for shown in (result.stdout, result.stderr):
        assert b"tail" not in shown and "très".encode() not in shown and b"\\xff" not in shown


def test_a_database_url_that_is_not_utf8_is_one_line(project, tmp_path):
    url = f"sqlite:///{tmp_path}/caf".encode() + b"\xe9.db"  # Latin-1, as an old shell has it
    result = _run_with_environ(project, {b"NEWSLETTER_DATABASE_URL": url}, "subscribers", "count")
    one_line_error(result.stderr.decode("utf-8", "backslashreplace"), result.returncode,
                   "NEWSLETTER_DATABASE_URL", "UTF-8")


# --------------------------------------------------------------------------- the week


@pytest.mark.parametrize("week", ["2026-W51\n", "٢٠٢٦-W51", "2026-W５１"])
def test_a_week_with_a_line_break_or_other_digits_is_refused(sqlite_project, week):
    before = sorted(p.name for p in (sqlite_project / "items").iterdir())
    result = invoke("new", "--week", week)
    one_line_error(result.stderr, result.exit_code, "invalid week")
    assert sorted(p.name for p in (sqlite_project / "items").iterdir()) == before


# --------------------------------------------------------------------------- passwords in URLs

SECRET = "Mötley-pässwörd"


def assert_hidden(text: str) -> None:
    """Neither the password nor its percent-encoded form (the ASCII middle is in both)."""
    assert "tley-p" not in text and "erstes-W" not in text, text


@pytest.mark.parametrize("url", [
    f"postgresql://newsletter:{SECRET}@db.bücher.example/news",
    f"postgresql://newsletter@db.example/news?password={SECRET}&sslmode=require",
    f"postgresql://newsletter@db.example/news?sslmode=require&password={SECRET}",
    f"postgresql://newsletter@db.example/news?sslpassword={SECRET}&sslmode=verify-full",
    f"postgresql://newsletter@db.example/news?PassWord={SECRET}",
    "postgresql://newsletter@db.example/news?pass%77ord=M%C3%B6tley-p%C3%A4ssw%C3%B6rd",
    "postgresql://newsletter@db.example/news?password=M%C3%B6tley-p%C3%A4ssw%C3%B6rd",
    f"postgresql://newsletter@db.example/news?password=erstes-Wört&password={SECRET}",
    f"postgresql://newsletter@db.example:notaport/news?password={SECRET}",
])
def test_safe_url_hides_every_password(url):
    assert_hidden(safe_url(url))


def test_safe_url_keeps_what_helps(url="postgresql://newsletter@db.example:6432/news"
                                       "?password=x&sslmode=require&application_name=nl"):
    shown = safe_url(url)
    assert shown.startswith("postgresql+psycopg://newsletter@db.example:6432/news?")
    assert "sslmode=require" in shown and "application_name=nl" in shown
    assert "password=***" in shown


@pytest.mark.parametrize("query", [f"password={SECRET}", f"sslpassword={SECRET}&password=x"])
def test_a_database_error_never_shows_a_query_password(project, query):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    url = f"postgresql://newsletter@127.0.0.1:1/news?{query}"
    result = invoke("db", "upgrade", env={"NEWSLETTER_DATABASE_URL": url})
    assert_hidden(one_line_error(result.stderr, result.exit_code, "127.0.0.1:1"))


def test_a_database_url_with_a_bad_port_is_one_line(project):
    url = f"postgresql://newsletter:{SECRET}@127.0.0.1:notaport/news"
    result = invoke("subscribers", "count", env={"NEWSLETTER_DATABASE_URL": url})
    assert_hidden(one_line_error(result.stderr, result.exit_code, "database_url"))


def test_a_config_error_about_the_database_url_hides_its_password(project):
    url = f"postgresql://newsletter@db.example/news?password={SECRET}\x07"
    result = invoke("subscribers", "count", env={"NEWSLETTER_DATABASE_URL": url})
    assert_hidden(one_line_error(result.stderr, result.exit_code, "'database_url'"))


def test_the_worker_start_line_hides_a_query_password(project, caplog):
    caplog.set_level(logging.INFO, logger="newsletter.worker")
    config = load_config(environ={
        "NEWSLETTER_DATABASE_URL":
            f"postgresql://newsletter@db.example/news?sslpassword={SECRET}&password={SECRET}"})
    log_start(config, Worker(config), datetime(2026, 11, 23, tzinfo=UTC))
    assert "worker starting" in caplog.text and "db.example/news" in caplog.text
    assert_hidden(caplog.text)


# --------------------------------------------------------------------------- the SQLite file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_and_its_wal_and_shm_are_private(project, tmp_path):
    path = tmp_path / "données" / "abonnés.db"
    old = os.umask(0o022)
    try:
        engine = db.connect(f"sqlite:///{path}")
        with engine.connect() as conn:  # an open connection keeps the -wal and -shm files
            conn.execute(sa.text("SELECT 1"))
            side_files = [Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(p.exists() for p in side_files)
            modes = {p.name: _mode(p) for p in (path, *side_files)}
    finally:
        os.umask(old)
        db.dispose_engines()
    assert modes == {p: 0o600 for p in modes}, {p: oct(m) for p, m in modes.items()}


def test_an_existing_sqlite_database_keeps_its_mode(tmp_path):
    path = tmp_path / "shared.db"
    sqlite3.connect(path).close()
    path.chmod(0o640)
    try:
        db.connect(f"sqlite:///{path}")
    finally:
        db.dispose_engines()
    assert _mode(path) == 0o640


# --------------------------------------------------------------------------- secrets in the file


def count_with_config_lines(project: Path, lines: str):
    """`subscribers count` after ``lines`` are added at the end of the project's config file."""
    config = project / "newsletter.toml"
    config.write_text(config.read_text(encoding="utf-8") + lines, encoding="utf-8")
    return invoke("subscribers", "count")


def test_a_secret_in_the_config_file_is_a_warning_to_move_it(sqlite_project):
    result = count_with_config_lines(sqlite_project, 'secret_key = "clé-de-signature-ünique"\n'
                                                     'smtp_password = "pässwort"\n')
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    for line, variable in zip(lines, ("NEWSLETTER_SECRET_KEY", "NEWSLETTER_SMTP_PASSWORD"),
                              strict=True):
        assert line.startswith("warning: ") and "newsletter.toml" in line and variable in line
    assert "clé-de-signature" not in result.stderr and "pässwort" not in result.stderr


def test_a_dkim_key_file_path_in_the_config_file_is_no_warning(sqlite_project):
    result = count_with_config_lines(sqlite_project, 'dkim_selector = "s2026"\n'
                                                     'dkim_private_key = "clés/dkim.pem"\n'
                                                     'secret_key = ""\n')
    assert result.exit_code == 0 and result.stderr == "", result.output
