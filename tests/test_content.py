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
    assert edition.headline == "Small Teams, Long Memories"
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
    text = path.read_text().replace("headline: Small Teams, Long Memories\n", "")
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
