"""One template lookup for the edition, the confirmation mail and the web pages: the project's
``templates_dir`` file by file, then the package's defaults."""

from __future__ import annotations

import shutil
from pathlib import Path

import jinja2
import pytest

from newsletter.config import load_config
from newsletter.delivery.outbox_mails import OutboxMail
from newsletter.delivery.states import OutboxKind
from newsletter.edition.render import render_week
from newsletter.edition.templates import package_templates, read_file, template_loader
from newsletter.errors import TemplateError
from newsletter.web.pages import Pages
from tests.web_helpers import Clock, web_client

WEEK = "2026-W47"
VALUES = {"first_name": "Zoë", "email": "zoe@bücher.example",
          "unsubscribe_url": "https://x.example/u/T", "manage_url": "https://x.example/m/T",
          "name": "Zoë"}


@pytest.fixture
def bare(project):
    """The sample project with no templates folder at all."""
    shutil.rmtree(project / "templates")
    return project


def config_of(project, **env):
    environ = {f"NEWSLETTER_{k.upper()}": v for k, v in env.items()}
    return load_config(project / "newsletter.toml", environ=environ)


def test_without_a_templates_folder_the_package_defaults_render_the_same(project, bare):
    with_copy = project.parent / "copy"
    shutil.copytree(package_templates(), with_copy)
    copied = render_week(config_of(project, templates_dir=str(with_copy)), WEEK)
    default = render_week(config_of(bare), WEEK)
    assert default.html.fill(VALUES) == copied.html.fill(VALUES)
    assert default.text.fill(VALUES) == copied.text.fill(VALUES)
    assert default.content_hash == copied.content_hash


def test_a_project_overrides_one_file_and_keeps_the_rest(bare):
    (bare / "templates").mkdir()
    (bare / "templates" / "edition.css").write_text(
        ".headline-text { color: #7a1f5c; }\n", encoding="utf-8")
    html = render_week(config_of(bare), WEEK).html.fill(VALUES)
    assert "color: #7a1f5c" in html           # the project's stylesheet
    assert "Small Teams" in html              # the package's edition.mjml.j2
    assert ".rule p" not in html              # the package's stylesheet is not used too


def test_a_project_template_wins_and_errors_name_its_file(bare):
    (bare / "templates").mkdir()
    path = bare / "templates" / "edition.txt.j2"
    path.write_text("{{ edition.headline }}\n{{ recipient.first_name|upper }}\n")
    with pytest.raises(TemplateError, match=rf"{path}:2: the filter '\|upper'"):
        render_week(config_of(bare), WEEK)


def test_an_include_found_nowhere_names_both_folders(bare):
    (bare / "templates").mkdir()
    path = bare / "templates" / "edition.txt.j2"
    path.write_text('{% include "footer.txt.j2" %}\n')
    with pytest.raises(TemplateError) as err:
        render_week(config_of(bare), WEEK)
    message = str(err.value)
    assert "template not found: footer.txt.j2" in message
    assert str(bare / "templates") in message and str(package_templates()) in message


def test_templates_dir_that_is_a_file_is_an_error(bare):
    (bare / "templates").write_text("not a folder")
    with pytest.raises(TemplateError, match=r"config key 'templates_dir' names .*templates, "
                                            r"which is a file"):
        render_week(config_of(bare), WEEK)


def test_the_confirmation_mail_comes_from_the_same_lookup(bare):
    from datetime import UTC, datetime

    config = config_of(bare, secret_key="k" * 32)
    mail = OutboxMail(config, datetime(2026, 11, 16, tzinfo=UTC), OutboxKind.CONFIRM)
    assert "Confirm your subscription" in "".join(mail.html.literals)
    (bare / "templates").mkdir()
    (bare / "templates" / "confirm.txt.j2").write_text(
        "Bitte bestätigen: {{ confirm_url }}\n", encoding="utf-8")
    mail = OutboxMail(config, datetime(2026, 11, 16, tzinfo=UTC), OutboxKind.CONFIRM)
    assert "Bitte bestätigen" in "".join(mail.text.literals)
    assert "Confirm your subscription" in "".join(mail.html.literals)  # still the default


def test_the_web_pages_and_their_stylesheet_come_from_the_same_lookup(bare, database_url):
    from tests.web_helpers import make_app, web_config

    config = web_config(bare, database_url)
    pages = Pages(config)
    assert "<html" in pages.text("message.html.j2", title="T", lines=["x"])
    client = web_client(make_app(config, Clock()))
    css = client.get("/static/site.css")
    assert css.status_code == 200
    assert css.content == (package_templates() / "web" / "site.css").read_bytes()
    (bare / "templates" / "web").mkdir(parents=True)
    (bare / "templates" / "web" / "site.css").write_text("body { color: #123456; }\n")
    client = web_client(make_app(web_config(bare, database_url), Clock()))
    assert client.get("/static/site.css").text == "body { color: #123456; }\n"
    assert client.get("/subscribe").status_code == 200  # pages still the package's


def test_read_file_names_what_is_missing(tmp_path):
    loader = template_loader(tmp_path / "nowhere", "web")
    source, where = read_file(loader, "site.css")
    assert Path(where) == package_templates() / "web" / "site.css" and "body" in source
    with pytest.raises(TemplateError, match="template file not found: missing.css"):
        read_file(loader, "missing.css")
    assert isinstance(loader, jinja2.BaseLoader)


def test_only_the_templates_an_edition_is_made_from_change_its_content_hash(bare):
    """A send refuses to resume when its content changed; editing a web page or the report
    template mid-send must not count as that, while the edition's own templates do."""
    templates = bare / "templates"
    templates.mkdir()
    before = render_week(config_of(bare), WEEK).content_hash
    (templates / "report.html.j2").write_text("<p>Rapport “édité”</p>\n", encoding="utf-8")
    (templates / "confirm.txt.j2").write_text("Bitte bestätigen’\n", encoding="utf-8")
    (templates / "web").mkdir()
    (templates / "web" / "archive.html.j2").write_text("<h1>Archiv</h1>\n", encoding="utf-8")
    assert render_week(config_of(bare), WEEK).content_hash == before

    edition_txt = (package_templates() / "edition.txt.j2").read_text(encoding="utf-8")
    (templates / "footer.txt.j2").write_text("— Grüße\n", encoding="utf-8")
    (templates / "edition.txt.j2").write_text(
        edition_txt + '{% include "footer.txt.j2" %}\n', encoding="utf-8")
    with_include = render_week(config_of(bare), WEEK).content_hash
    assert with_include != before

    (templates / "footer.txt.j2").write_text("— Grüße, das Team\n", encoding="utf-8")
    assert render_week(config_of(bare), WEEK).content_hash != with_include

    (templates / "edition.css").write_text(".x { color: #123456; }\n", encoding="utf-8")
    assert render_week(config_of(bare), WEEK).content_hash != with_include
