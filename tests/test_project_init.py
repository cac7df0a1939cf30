"""`newsletter init`: a project of one's own, complete, documented, and never written over an
existing file."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.config import Config, key_fields, load_config
from newsletter.edition.content import current_week, load_edition
from newsletter.edition.templates import package_templates
from newsletter.project.config_file import notes, render_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def here(tmp_path, monkeypatch):
    """An empty folder to work in, with no NEWSLETTER_* settings around."""
    for key in list(os.environ):
        if key.startswith("NEWSLETTER_"):
            monkeypatch.delenv(key)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def init(*args):
    return CliRunner().invoke(cli, ["init", *args])


def test_init_creates_a_project_that_previews(here):
    before = current_week("UTC")
    result = init("mynews", "--name", "José’s Notes")
    after = current_week("UTC")
    assert result.exit_code == 0, result.output
    assert "cd mynews" in result.output and "newsletter preview" in result.output
    project = here / "mynews"
    [week] = [p.name for p in (project / "items").iterdir()]
    assert week in (before, after)
    assert {p.name for p in project.iterdir()} == {
        "newsletter.toml", ".gitignore", "items", "templates", "subscribers"}
    config = load_config(project / "newsletter.toml", environ={})
    assert config.name == "José’s Notes"
    edition = load_edition(config.items_dir, week)
    assert len(edition.items) == 3 and edition.headline == "Your First Edition"
    os.chdir(project)
    preview = CliRunner().invoke(cli, ["preview", "--week", week])
    assert preview.exit_code == 0, preview.output
    html = (project / "outbox" / f"{week}.html").read_text()
    assert "Your First Edition" in html and "Jos&#233;&#8217;s Notes" in html


def test_the_templates_are_a_copy_of_the_packages(here):
    assert init("mynews").exit_code == 0
    copied = here / "mynews" / "templates"
    shipped = package_templates()
    names = sorted(p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file())
    assert "edition.mjml.j2" in names and "web/base.html.j2" in names
    assert "confirm.mjml.j2" in names
    for name in names:
        assert (copied / name).read_bytes() == (shipped / name).read_bytes(), name


def test_no_templates_keeps_the_defaults(here):
    assert init("plain", "--no-templates").exit_code == 0
    assert not (here / "plain" / "templates").exists()
    os.chdir(here / "plain")
    assert CliRunner().invoke(cli, ["preview"]).exit_code == 0


def test_gitignore_keeps_state_and_secrets_out(here):
    assert init().exit_code == 0  # here, in the current folder
    rules = (here / ".gitignore").read_text().splitlines()
    for rule in ("/outbox/", "subscribers/*.db", "subscribers/*.db-*", ".env"):
        assert rule in rules
    assert (here / "subscribers").is_dir()


@pytest.mark.parametrize("existing", ["newsletter.toml", ".gitignore", "items", "templates",
                                      "subscribers"])
def test_init_refuses_to_overwrite_anything(here, existing):
    target = here / "taken"
    target.mkdir()
    path = target / existing
    if "." in existing:
        path.write_text("mine\n")
    else:
        path.mkdir()
        (path / "keep.txt").write_text("mine\n")
    (target / "README.md").write_text("my project\n")
    before = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    result = init("taken")
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "exists; init never overwrites" in \
        result.output and existing in result.output
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*")) == before
    assert not [p for p in here.iterdir() if p.name.startswith(".taken.init-")]


def test_init_into_a_folder_with_other_files_keeps_them(here):
    (here / "README.md").write_text("my project\n")
    assert init(".").exit_code == 0
    assert (here / "README.md").read_text() == "my project\n"
    assert (here / "newsletter.toml").is_file()


def test_a_bad_name_and_a_file_as_the_folder_are_one_line(here):
    result = init("x", "--name", "two\nlines")
    assert result.exit_code == 1 and "must be one line" in result.output
    (here / "afile").write_text("")
    result = init("afile")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert not (here / "x").exists()


# -- newsletter.toml: every key, its default, a note ------------------------------------------

def test_every_config_key_has_a_note():
    missing = [f.name for f in key_fields() if f.name not in notes()]
    assert missing == [], f"add a one-line note for {missing} in project/config_file.py"
    stale = sorted(set(notes()) - {f.name for f in key_fields()})
    assert stale == []


def test_the_written_config_lists_every_key_once_with_a_comment():
    text = render_config({"name": "Five Things"})
    for f in key_fields():
        lines = [line for line in text.splitlines()
                 if re.match(rf"^(# )?{f.name} = ", line)]
        assert len(lines) == 1, f.name
        assert "  # " in lines[0], f"{f.name} has its note on the line"


def test_uncommenting_every_line_gives_the_defaults(tmp_path):
    text = render_config({"name": "Five Things"})
    uncommented = "\n".join(re.sub(r"^# (\w+ = )", r"\1", line) for line in text.splitlines())
    values = tomllib.loads(uncommented)
    assert set(values) == {f.name for f in key_fields()}
    path = tmp_path / "newsletter.toml"
    path.write_text(uncommented, encoding="utf-8")
    loaded = load_config(path, environ={})
    # The same folder, so that relative paths (items_dir, database_url) resolve alike.
    only_name = tmp_path / "defaults.toml"
    only_name.write_text('name = "Five Things"\n')
    defaults = load_config(only_name, environ={})
    for f in key_fields():
        assert getattr(loaded, f.name) == getattr(defaults, f.name), f.name


def test_the_readme_table_names_every_key():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| key | default | meaning |"):]
    table = table[:table.index("\n\n")]
    keys = set(re.findall(r"`([a-z_0-9]+)`", "\n".join(
        line.split("|")[1] for line in table.splitlines()[2:])))
    missing = [f.name for f in key_fields() if f.name not in keys]
    assert missing == [], f"the README's configuration table lacks {missing}"


def test_the_config_defaults_are_the_dataclass_defaults():
    text = render_config({})
    assert '# schedule = "0 8 * * mon"' in text
    assert f"# concurrency = {Config.concurrency}" in text
    assert "# archive = true" in text and "# secret_key_previous = []" in text
