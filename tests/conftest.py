"""Shared fixtures: a database URL on each backend, a project folder with sample content."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# No per-example deadline: on a loaded machine a slow example is not a failure (tests that
# want one set their own). Under CI the examples are derived from each test, not drawn at
# random, so a run is repeatable; local runs go on exploring.
settings.register_profile("newsletter", deadline=None)
settings.register_profile("ci", parent=settings.get_profile("newsletter"), derandomize=True,
                          database=None)
settings.load_profile("ci" if os.environ.get("CI") else "newsletter")
POSTGRES_URL = os.environ.get(
    "NEWSLETTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _postgres_available() -> str | None:
    """None when the server answers, else the reason it does not."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def postgres_server() -> str:
    reason = _postgres_available()
    if reason is not None:
        if os.environ.get("NEWSLETTER_REQUIRE_POSTGRES") or os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required here but not reachable: {reason}")
        pytest.skip(f"PostgreSQL not reachable: {reason}")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str):
    """A URL whose search_path is a fresh schema, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path) -> str:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'newsletter.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engines_disposed():
    """After the test, every cached engine closed and forgotten, so that no idle connection
    outlives the test's database (a module asks for it with ``pytestmark``)."""
    yield
    from newsletter.store import db

    db.dispose_engines()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's sample project (config, templates, items, sample CSV)."""
    dest = tmp_path / "project"
    dest.mkdir()
    shutil.copy(ROOT / "newsletter.toml", dest / "newsletter.toml")
    shutil.copytree(ROOT / "templates", dest / "templates")
    shutil.copytree(ROOT / "items", dest / "items")
    (dest / "subscribers").mkdir()
    shutil.copy(ROOT / "subscribers" / "sample.csv", dest / "subscribers" / "sample.csv")
    for key in list(os.environ):
        if key.startswith("NEWSLETTER_") and not key.startswith("NEWSLETTER_TEST"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(dest)
    return dest
