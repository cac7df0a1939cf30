"""The edition renders once into responsive HTML with CSS inlined, and a text part."""

import re
from pathlib import Path

import pytest

from newsletter.config import load_config
from newsletter.edition.content import load_edition
from newsletter.edition.render import render_edition, render_week
from newsletter.errors import TemplateError

WEEK = "2026-W47"
VALUES = {
    "name": "Ada Lovelace",
    "first_name": "Ada",
    "email": "ada@example.com",
    "unsubscribe_url": "https://x.example/unsubscribe/TOKEN",
    "manage_url": "https://x.example/manage/TOKEN",
}


@pytest.fixture
def config(project):
    return load_config(project / "newsletter.toml", environ={})


@pytest.fixture
def rendered(config):
    return render_week(config, WEEK)


def test_subject_defaults_to_name_and_headline(rendered):
    assert rendered.subject == "Five Things | Small Teams’ Long Memories"


def test_subject_override(project, config):
    path = project / "items" / WEEK / "edition.md"
    path.write_text(path.read_text().replace("---\n", "---\nsubject: Special issue\n", 1))
    assert render_week(config, WEEK).subject == "Special issue"


def test_html_is_responsive_with_css_inlined(rendered):
    html = rendered.html.fill(VALUES)
    assert "@media only screen and (min-width:480px)" in html  # MJML column widths
    assert re.search(r"@media only screen and \(max-width: ?480px\)\s*\{\s*\.headline-text", html)
    take = re.search(r'<p class="take" style="([^"]+)"', html)
    assert take and "font-style: italic" in take.group(1)
    assert len(html.encode()) < 102 * 1024, "Gmail clips messages over 102 KB"


def test_every_item_has_its_bold_lead_and_link_in_both_parts(config, rendered):
    edition = load_edition(config.items_dir, WEEK)
    html, text = rendered.html.fill(VALUES), rendered.text.fill(VALUES)
    for item in edition.items:
        assert '<strong class="lead-sentence" style="' in html
        assert re.search(rf'<strong class="lead-sentence"[^>]*>{re.escape(item.title)}</strong>',
                         html)
        assert f'href="{item.url}"' in html
        assert item.title in text
        assert f"({item.url})" in text


def test_preheader_is_hidden_at_the_top_of_the_body(rendered):
    html = rendered.html.fill(VALUES)
    body = html[html.index("<body"):]
    hidden = re.search(r'<div style="display:none;[^"]*">([^<]+)</div>', body)
    assert hidden and hidden.group(1).startswith("Five ideas on feedback")


def test_footer_has_postal_address_and_visible_unsubscribe_link(rendered):
    html, text = rendered.html.fill(VALUES), rendered.text.fill(VALUES)
    assert "100 Example Street" in html and "100 Example Street" in text
    assert re.search(r'<a class="unsubscribe" href="https://x.example/unsubscribe/TOKEN"', html)
    assert "Unsubscribe: https://x.example/unsubscribe/TOKEN" in text


def test_recipient_fields_are_left_open_and_nothing_else(rendered):
    assert rendered.fields == {"first_name", "email", "unsubscribe_url", "manage_url"}
    for part in (rendered.html.fill(VALUES), rendered.text.fill(VALUES)):
        assert "Hi Ada," in part
        for marker in ("{{", "}}", "{%", "%}", "@@"):
            assert marker not in part


def test_rendering_is_deterministic(config):
    assert render_week(config, WEEK) == render_week(config, WEEK)


def test_markdown_in_items_becomes_html_and_plain_text(project, config):
    path = project / "items" / WEEK / "01-evaluation-is-the-product.md"
    path.write_text(path.read_text() + "\nSee [the paper](https://example.org/p) for *more*.\n"
                    "\n<script>alert(1)</script>\n")
    rendered = render_week(config, WEEK)
    html, text = rendered.html.fill(VALUES), rendered.text.fill(VALUES)
    assert '<a href="https://example.org/p"' in html and "<em>more</em>" in html
    assert "See the paper (https://example.org/p) for more." in text
    assert "<script>" not in html, "raw HTML in items is escaped, not passed through"


def test_item_text_is_escaped_in_html(project, config):
    path = project / "items" / WEEK / "02-handoffs.md"
    path.write_text(path.read_text().replace("title: Most", "title: <b>Bold</b> & Most"))
    html = render_week(config, WEEK).html.fill(VALUES)
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Most" in html


def test_an_unknown_template_variable_names_template_and_line(project, config):
    path = project / "templates" / "edition.mjml.j2"
    lines = path.read_text().splitlines()
    lines.insert(30, "{{ edition.footnote }}")
    path.write_text("\n".join(lines))
    with pytest.raises(TemplateError, match=r"edition\.mjml\.j2:31: .*footnote"):
        render_week(config, WEEK)


def test_an_unknown_recipient_field_is_an_error(project, config):
    path = project / "templates" / "edition.txt.j2"
    path.write_text(path.read_text() + "{{ recipient.phone }}\n")
    with pytest.raises(TemplateError, match=r"edition\.txt\.j2:\d+: .*phone"):
        render_week(config, WEEK)


def test_recipient_attributes_are_available(project, config):
    path = project / "templates" / "edition.txt.j2"
    path.write_text(path.read_text() + "City: {{ recipient.attributes.city }}\n")
    rendered = render_week(config, WEEK)
    assert "attributes.city" in rendered.fields


def test_a_template_syntax_error_names_the_line(project, config):
    path = project / "templates" / "edition.txt.j2"
    path.write_text("line one\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"edition\.txt\.j2:2: "):
        render_week(config, WEEK)



def test_content_hash_changes_with_content(project, config):
    before = render_week(config, WEEK).content_hash
    path = project / "items" / WEEK / "03-provenance.md"
    path.write_text(path.read_text().replace("Librarians", "Archivists"))
    assert render_week(config, WEEK).content_hash != before


def test_repository_templates_render_the_sample(tmp_path):
    root = Path(__file__).resolve().parent.parent
    config = load_config(root / "newsletter.toml", environ={})
    assert render_edition(config, load_edition(config.items_dir, WEEK)).html.literals


# --------------------------------------------------------------------------- recipient fields


def edit_template(project, name: str, old: str, new: str) -> None:
    path = project / "templates" / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(("template", "expression", "error"), [
    ("edition.txt.j2", "recipient.first_name|upper", r"the filter '\|upper' on "
                                                      r"recipient\.first_name cannot work"),
    ("edition.mjml.j2", "recipient.first_name|title", r"the filter '\|title'"),
    ("edition.txt.j2", "recipient.first_name|default('friend')", r"the filter '\|default'"),
    ("edition.txt.j2", "recipient.first_name.upper()",
     r"recipient\.first_name\.upper: a recipient field has no attributes or methods"),
    ("edition.txt.j2", "recipient.first_name if recipient.name else 'there'",
     r"recipient\.name cannot be tested"),
])
def test_a_transformed_recipient_field_is_an_error_naming_template_and_line(
        project, config, template, expression, error):
    edit_template(project, template, "recipient.first_name", expression)
    lineno = next(i for i, line in enumerate(
        (project / "templates" / template).read_text().splitlines(), 1) if expression in line)
    with pytest.raises(TemplateError, match=rf"{re.escape(template)}:{lineno}: {error}"):
        render_week(config, WEEK)


def test_a_recipient_field_in_a_condition_is_an_error(project, config):
    edit_template(project, "edition.txt.j2", "Hi {{ recipient.first_name }},",
                  "{% if recipient.name %}Hi {{ recipient.name }},{% endif %}")
    with pytest.raises(TemplateError, match=r"edition\.txt\.j2:10: recipient\.name cannot be "
                                            r"tested"):
        render_week(config, WEEK)


def test_harmless_filters_and_joins_keep_working(project, config):
    edit_template(project, "edition.txt.j2", "Hi {{ recipient.first_name }},",
                  "Hi {{ recipient.first_name|e }}{{ '!' ~ recipient.email|string }},")
    text = render_week(config, WEEK).text.fill(VALUES)
    assert "Hi Ada!ada@example.com," in text


def test_a_marker_altered_at_run_time_is_never_left_in_the_output(project, config):
    # A macro applies the filter where the template check cannot see the field: the rendered
    # text is checked too, so the marker can never be mailed.
    edit_template(project, "edition.txt.j2", "Hi {{ recipient.first_name }},",
                  "{% macro shout(v) %}{{ v|upper }}{% endmacro %}"
                  "Hi {{ shout(recipient.first_name) }},")
    with pytest.raises(TemplateError, match=r"edition\.txt\.j2: a recipient field was altered "
                                            r"while rendering \(output line \d+: '@@NL"):
        render_week(config, WEEK)


def test_an_unknown_recipient_field_names_the_variable_not_a_class(project, config):
    path = project / "templates" / "edition.txt.j2"
    path.write_text(path.read_text() + "{{ recipient.nickname }}\n")
    with pytest.raises(TemplateError) as err:
        render_week(config, WEEK)
    message = str(err.value)
    assert re.search(r"edition\.txt\.j2:\d+: recipient\.nickname is undefined \(recipient "
                     r"fields: name, first_name, email, unsubscribe_url, manage_url and "
                     r"attributes", message)
    assert "RecipientMarkers" not in message and "object" not in message
