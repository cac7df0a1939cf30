"""newsletter.db: URLs, engines, and migrations that are cheap to check and safe to run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.store import db, tables

pytestmark = pytest.mark.usefixtures("engines_disposed")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgres://u@h:5433/db?sslmode=require", "postgresql+psycopg://u@h:5433/db?sslmode=require"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
        ("  sqlite:///x.db ", "sqlite:///x.db"),
    ],
)
def test_normalize_url(given, expected):
    assert db.normalize_url(given) == expected
    assert db.normalize_url(db.normalize_url(given)) == expected


def test_safe_url_hides_the_password():
    assert "secret" not in db.safe_url("postgres://me:secret@host/db")


def test_sqlite_connect_creates_folder_and_sets_pragmas(tmp_path):
    path = tmp_path / "deep" / "er" / "newsletter.db"
    engine = db.connect(f"sqlite:///{path}")
    assert path.exists()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    assert db.connect(f"sqlite:///{path}") is engine  # cached


def test_connect_migrates_to_head(database_url):
    engine = db.connect(database_url)
    assert db.current_revision(engine) == db.head_revision() is not None
    tables = set(sa.inspect(engine).get_table_names())
    assert {"subscribers", "suppressions", "alembic_version"} <= tables


def test_head_revision_agrees_with_alembic():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(cfg)
    assert script.get_heads() == [db.head_revision()]
    assert all(len(rev.revision) <= 32 for rev in script.walk_revisions())  # alembic_version


def test_migrated_schema_matches_tables_py(database_url):
    """tables.py (used by queries) and the migrations (used to build databases) agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = db.connect(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert diff == []


def test_up_to_date_database_does_not_import_alembic(tmp_path):
    """The cold-start path: one SELECT on alembic_version, no Alembic import."""
    url = f"sqlite:///{tmp_path / 'n.db'}"
    db.connect(url)
    code = (
        "import sys; from newsletter.store import db; db.connect(sys.argv[1]); "
        "print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_processes_starting_together_migrate_once(database_url):
    url = database_url
    code = "import sys; from newsletter.store import db; db.connect(sys.argv[1]); print('ok')"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [out.strip() for out, _ in results] == ["ok"] * 3, results
    engine = db.connect(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1


def test_failed_migration_rolls_back_completely(database_url, tmp_path, monkeypatch):
    """Migrations are transactional on both backends: a failure leaves the previous schema."""
    db.connect(database_url)
    db.dispose_engines()
    head = db.head_revision()
    migrations = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "9999_broken.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = '9999_broken'\ndown_revision = {head!r}\n\n"
        "def upgrade():\n"
        "    op.create_table('half_done', sa.Column('id', sa.Integer, primary_key=True))\n"
        "    op.execute('SELECT * FROM no_such_table')\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(db, "MIGRATIONS_DIR", migrations)
    with pytest.raises(db.DatabaseError, match="cannot migrate"):
        db.connect(database_url)
    engine = db._engine(db.normalize_url(database_url))
    assert "half_done" not in sa.inspect(engine).get_table_names()
    assert db.current_revision(engine) == head


def test_database_newer_than_the_code_is_refused(database_url):
    engine = db.connect(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    db.dispose_engines()
    with pytest.raises(db.DatabaseError, match="'9999_future'.*upgrade newsletter"):
        db.connect(database_url)


def test_unsupported_url_is_a_database_error():
    with pytest.raises(db.DatabaseError, match="must be sqlite"):
        db.connect("mysql://localhost/x")


def test_sqlite_write_transactions_are_real(tmp_path):
    """Transactions roll back on SQLite (the driver's implicit-commit behaviour is off)."""
    engine = db.connect(f"sqlite:///{tmp_path / 'n.db'}")
    with pytest.raises(RuntimeError), db.begin_write(engine) as conn:
        conn.exec_driver_sql("CREATE TABLE scratch (id INTEGER)")
        raise RuntimeError
    assert "scratch" not in sa.inspect(engine).get_table_names()


def test_package_data_lists_the_migration_files():
    root = Path(db.__file__).parent
    assert (root / "migrations" / "env.py").is_file()
    assert list((root / "migrations" / "versions").glob("0001_*.py"))
