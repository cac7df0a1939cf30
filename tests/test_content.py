"""Reading a week's folder, and every way it can be wrong."""

from pathlib import Path

import pytest

from newsletter.edition.content import load_edition, parse_week
from newsletter.errors import ContentError, HeaderError

WEEK = "2026-W47"


def week_dir(project: Path) -> Path:
    return project / "items" / WEEK


def test_the_sample_week_loads_in_file_name_order(project):
    edition = load_edition(project / "items", WEEK)
    assert edition.headline == "Small Teams’ Long Memories"
    assert [item.path.name for item in edition.items] == sorted(
        p.name for p in week_dir(project).glob("0*.md")
    )
    assert len(edition.items) == 5
    assert all(item.title and item.body and item.url for item in edition.items)


@pytest.mark.parametrize("bad", ["2026-47", "2026-W54", "2025-W53", "W47", ""])
def test_a_malformed_week_is_refused(bad):
    with pytest.raises(ContentError, match="invalid week"):
        parse_week(bad)


def test_a_missing_week_folder_is_named(project):
    with pytest.raises(ContentError, match=r"no folder for week 2026-W01: .*items/2026-W01"):
        load_edition(project / "items", "2026-W01")


def test_a_week_without_items_is_refused(project):
    for path in week_dir(project).glob("0*.md"):
        path.unlink()
    with pytest.raises(ContentError, match="no item files"):
        load_edition(project / "items", WEEK)


def test_a_missing_edition_file_is_named(project):
    (week_dir(project) / "edition.md").unlink()
    with pytest.raises(ContentError, match=r"edition\.md: missing"):
        load_edition(project / "items", WEEK)


def test_malformed_front_matter_names_file_and_line(project):
    path = week_dir(project) / "02-handoffs.md"
    lines = path.read_text().splitlines()
    lines[3] = "source: [unclosed"  # the fourth line of the file
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ContentError, match=r"02-handoffs\.md:[45]: malformed front matter"):
        load_edition(project / "items", WEEK)


def test_unclosed_front_matter_is_reported(project):
    path = week_dir(project) / "03-provenance.md"
    path.write_text(path.read_text().replace("---\n", "", 2).replace("title", "---\ntitle", 1))
    with pytest.raises(ContentError, match=r"03-provenance\.md: front matter is not closed"):
        load_edition(project / "items", WEEK)


@pytest.mark.parametrize(
    ("name", "field"), [("edition.md", "headline"), ("01-evaluation-is-the-product.md", "title")]
)
def test_a_missing_required_field_is_named(project, name, field):
    path = week_dir(project) / name
    text = "\n".join(
        line for line in path.read_text().splitlines() if not line.startswith(f"{field}:")
    )
    path.write_text(text + "\n")
    with pytest.raises(ContentError, match=rf"{name}: missing required field '{field}'"):
        load_edition(project / "items", WEEK)


def test_an_item_with_an_empty_body_is_refused(project):
    path = week_dir(project) / "04-boring-infrastructure.md"
    text = path.read_text()
    path.write_text(text[: text.index("---", 3) + 3] + "\n\n   \n")
    with pytest.raises(ContentError, match=r"04-boring-infrastructure\.md: the item has no body"):
        load_edition(project / "items", WEEK)


def test_a_misspelt_field_is_reported_not_ignored(project):
    path = week_dir(project) / "05-small-models.md"
    path.write_text(path.read_text().replace("take:", "tkae:"))
    with pytest.raises(ContentError, match=r"05-small-models\.md: unknown field 'tkae'"):
        load_edition(project / "items", WEEK)


@pytest.mark.parametrize("field", ["headline", "subject"])
def test_a_line_break_in_a_header_field_is_refused(project, field):
    path = week_dir(project) / "edition.md"
    text = path.read_text().replace("headline: Small Teams’ Long Memories\n", "")
    if field == "subject":
        text = text.replace("---\n", "---\nheadline: Fine\n", 1)
    path.write_text(text.replace("---\n", f'---\n{field}: "One\\nTwo"\n', 1))
    with pytest.raises(HeaderError, match=rf"edition\.md: field '{field}' must be one line"):
        load_edition(project / "items", WEEK)


def test_an_item_url_must_be_a_web_address(project):
    path = week_dir(project) / "01-evaluation-is-the-product.md"
    path.write_text(path.read_text().replace("url: https://", "url: javascript://"))
    with pytest.raises(ContentError, match="field 'url' must be an http"):
        load_edition(project / "items", WEEK)


# --------------------------------------------------------------------------- front matter values


def set_headline(project: Path, line: str) -> Path:
    path = week_dir(project) / "edition.md"
    lines = path.read_text().splitlines()
    assert lines[1].startswith("headline: ")
    lines[1] = line
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("value", ["2026-02-30", "2026-02-03", "9" * 5000, "yes", "0x1F",
                                   "1_000", ".inf", "12:30:00", "~no"])
def test_every_plain_value_is_text_as_written(project, value):
    set_headline(project, f"headline: {value}")
    assert load_edition(project / "items", WEEK).headline == value


def test_a_list_nested_3000_deep_is_one_error_naming_the_file(project):
    set_headline(project, "headline: " + "[" * 3000 + "]" * 3000)
    with pytest.raises(ContentError, match=r"edition\.md: front matter is nested too deeply"):
        load_edition(project / "items", WEEK)


@pytest.mark.parametrize(("line", "kind"), [("headline: [a, b]", "a list"),
                                            ("headline: {a: b}", "a set of fields")])
def test_a_list_or_mapping_where_text_belongs_names_the_field(project, line, kind):
    set_headline(project, line)
    with pytest.raises(ContentError, match=rf"edition\.md: field 'headline' must be text, "
                                           rf"got {kind} \(put the value in quotes"):
        load_edition(project / "items", WEEK)


def test_a_headline_with_a_colon_says_to_quote_it(project):
    set_headline(project, "headline: Scale: Why It Matters")
    with pytest.raises(ContentError) as err:
        load_edition(project / "items", WEEK)
    assert str(err.value).endswith(
        'edition.md:2: malformed front matter: mapping values are not allowed here; a value '
        'with a colon must be in quotes: headline: "Scale: Why It Matters"')
    set_headline(project, 'headline: "Scale: Why It Matters"')
    assert load_edition(project / "items", WEEK).headline == "Scale: Why It Matters"


def test_a_field_given_twice_is_refused(project):
    path = week_dir(project) / "edition.md"
    path.write_text(path.read_text().replace("---\n", "---\ndek: first\n", 1))
    with pytest.raises(ContentError, match=r"edition\.md:\d: field 'dek' is given twice"):
        load_edition(project / "items", WEEK)


@pytest.mark.parametrize("escape", ["\\v", "\\u2028", "\\0", "\\t"])
def test_a_control_character_in_any_field_is_refused(project, escape):
    path = week_dir(project) / "02-handoffs.md"
    lines = path.read_text().splitlines()
    lines[1] = f'title: "Handoffs{escape}Bcc: x@example.com"'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ContentError, match=r"02-handoffs\.md: field 'title' must be one line"):
        load_edition(project / "items", WEEK)


# --------------------------------------------------------------------------- what is an item


def test_only_numbered_files_are_items_others_are_a_warning(project, caplog):
    folder = week_dir(project)
    (folder / "README.md").write_text("notes for editors\n")
    (folder / "draft.md").write_text("---\ntitle: later\n---\nbody\n")
    (folder / "._01-evaluation-is-the-product.md").write_bytes(b"\x00\x05\x16\x07 mac")
    (folder / ".hidden.md").write_text("x")
    (folder / ".DS_Store").write_bytes(b"\x00\x00")
    with caplog.at_level("WARNING", logger="newsletter.edition"):
        edition = load_edition(project / "items", WEEK)
    assert len(edition.items) == 5
    warned = sorted(r.getMessage() for r in caplog.records)
    assert len(warned) == 2
    assert warned[0].endswith("README.md: not an item (items are files named like "
                              "01-slug.md); left out")
    assert "draft.md: not an item" in warned[1]
