"""`newsletter new --from FILE.json`: a week handed over as data, checked against the shipped
schema with one line per problem naming its JSON path, written whole or not at all, and read
back by the Markdown loader as exactly what was given."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from newsletter.cli import cli
from newsletter.edition.content import load_edition
from newsletter.project.items_json import ItemsError, parse_items, schema_text
from newsletter.project.week_files import ItemData, WeekData, week_files
from newsletter.project.week_folder import write_week

WEEK = "2026-W48"


def good(**changes) -> dict:
    data = {
        "headline": "José’s “Long Weekend” 🎉",
        "dek": "Three links from bücher.example and one chart",
        "intro": "A short one.\n\nSee *you* next week.",
        "items": [
            {"title": "Evaluation: the real spec.", "body": "Teams grade **examples**.",
             "take": "Our take: own the test set.", "source": "A panel",
             "url": "https://bücher.example/notes?a=1#x"},
            {"title": "A second item.", "body": "Body two."},
        ],
    }
    data.update(changes)
    return data


def problems_of(data) -> list[str]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with pytest.raises(ItemsError) as err:
        parse_items(raw, "week.json")
    return err.value.problems


def item(**changes) -> dict:
    base = {"title": "T.", "body": "B."}
    base.update(changes)
    return base


# -- the schema ------------------------------------------------------------------------------

def test_the_shipped_schema_is_a_valid_draft_2020_12_schema_and_accepts_the_example():
    schema = json.loads(schema_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert list(Draft202012Validator(schema).iter_errors(good())) == []


def test_schema_items_prints_the_schema():
    result = CliRunner().invoke(cli, ["schema", "items"])
    assert result.exit_code == 0
    assert json.loads(result.output) == json.loads(schema_text())


# -- every invalid input, and the path it names ------------------------------------------------

INVALID = [
    (good(headline=""), "$.headline: must not be empty"),
    (good(headline=" \u3000 "), "$.headline: must not be empty"),
    ({k: v for k, v in good().items() if k != "headline"}, "$.headline: missing (required)"),
    (good(headline=7), "$.headline: must be text (a JSON string), got a number"),
    (good(headline=None), "$.headline: must be text (a JSON string), got null"),
    (good(headline="Line one\nline two"),
     "$.headline: must be one line, without control characters (found U+000A)"),
    (good(dek="carriage\rreturn"), "$.dek: must be one line, without control characters "
                                   "(found U+000D)"),
    (good(preheader="vertical\x0btab"), "$.preheader: must be one line, without control "
                                        "characters (found U+000B)"),
    (good(subject="nul\x00byte"), "$.subject: must be one line, without control characters "
                                  "(found U+0000)"),
    (good(dek="para\u2028sep"), "$.dek: must be one line, without control characters "
                                "(found U+2028)"),
    (good(intro="bell\x07"), "$.intro: control character U+0007 is not allowed (line breaks "
                             "and tabs are)"),
    (good(items=[]), "$.items: needs at least one item"),
    (good(items={"title": "T"}), "$.items: must be a list (a JSON array), got an object"),
    (good(items=["just text"]), "$.items[0]: must be an object ({...}), got text"),
    (good(items=[item(), item(title="")]), "$.items[1].title: must not be empty"),
    (good(items=[item(), {"body": "B."}]), "$.items[1].title: missing (required)"),
    (good(items=[item(), item(), {"title": "T."}]), "$.items[2].body: missing (required)"),
    (good(items=[item(body="   \n\n ")]), "$.items[0].body: must not be empty"),
    (good(items=[item(body="nul\x00")]), "$.items[0].body: control character U+0000 is not "
                                         "allowed (line breaks and tabs are)"),
    (good(items=[item(title="Two\nlines")]), "$.items[0].title: must be one line, without "
                                              "control characters (found U+000A)"),
    (good(items=[item(take="tab\tinside")]), "$.items[0].take: must be one line, without "
                                              "control characters (found U+0009)"),
    (good(items=[item(source=["a"])]), "$.items[0].source: must be text (a JSON string), "
                                       "got a list"),
    (good(items=[item(), item(), item(url="ftp://example.org/x")]),
     "$.items[2].url: must be an http(s) address, got 'ftp://example.org/x'"),
    (good(items=[item(url="https://exa mple.org")]),
     "$.items[0].url: must be an http(s) address, got 'https://exa mple.org'"),
    (good(items=[item(url="javascript:alert(1)")]),
     "$.items[0].url: must be an http(s) address, got 'javascript:alert(1)'"),
    (good(items=[item(url=True)]), "$.items[0].url: must be text (a JSON string), got "
                                   "true/false"),
    (good(items=[item(titel="typo")]),
     "$.items[0].titel: unknown field (allowed: title, body, take, source, url)"),
    (good(headlines="typo"), "$.headlines: unknown field (allowed: week, headline, dek, "
                             "preheader, subject, intro, items)"),
    (good(**{"two words": 1}), "$['two words']: unknown field (allowed: week, headline, dek, "
                               "preheader, subject, intro, items)"),
    (good(week="2026-48"), "$.week: must be an ISO week like 2026-W48, got '2026-48'"),
    (good(week="2026-W60"), "$.week: 2026 has no week 60"),
    ([good()], "$: must be an object ({...}), got a list"),
]


@pytest.mark.parametrize(("data", "expected"), INVALID,
                         ids=[expected.split(":")[0] + "|" + expected.split(": ", 1)[1][:24]
                              for _, expected in INVALID])
def test_an_invalid_week_names_the_path(data, expected):
    assert problems_of(data) == [expected]


RAW = [
    (b"", "empty; expected a JSON object (see `newsletter schema items`)"),
    (b"  \n", "empty; expected a JSON object (see `newsletter schema items`)"),
    (b"\xff\xfe{}", "not UTF-8 text (byte 0)"),
    (b'{"headline": "x",\n "items": [}', "line 2 column 12: not valid JSON: Expecting value"),
    (b'{"headline": NaN, "items": []}', "not valid JSON: NaN is not a JSON value"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply to be a week's items"),
    (b'{"headline": "\\ud800", "items": [{"title": "T", "body": "B"}]}',
     "$.headline: not Unicode text (an unpaired surrogate, \\ud800)"),
    (b'{"headline": "A", "headline": "B", "items": [{"title": "T", "body": "B"}]}',
     "$.headline: given twice"),
    (b'{"headline": "A", "items": [{"title": "T", "body": "B", "body": "C"}]}',
     "$.items[0].body: given twice"),
]


@pytest.mark.parametrize(("raw", "expected"), RAW, ids=[e[:30] for _, e in RAW])
def test_input_that_is_not_json_or_not_unicode_is_one_line(raw, expected):
    assert problems_of(raw) == [expected]


def test_every_problem_is_reported_at_once_in_document_order():
    data = good(headline="", items=[item(url="ftp://x"), item(title="a\nb", extra=1)])
    assert problems_of(data) == [
        "$.headline: must not be empty",
        "$.items[0].url: must be an http(s) address, got 'ftp://x'",
        "$.items[1].extra: unknown field (allowed: title, body, take, source, url)",
        "$.items[1].title: must be one line, without control characters (found U+000A)",
    ]


def test_a_byte_order_mark_and_surrounding_space_are_accepted():
    raw = "\ufeff".encode() + json.dumps(good(dek="  spaced  ")).encode()
    assert parse_items(raw, "week.json").dek == "spaced"


# -- the command -------------------------------------------------------------------------------

@pytest.fixture
def run(project):
    def invoke(*args, input=None):
        return CliRunner().invoke(cli, ["new", *args], input=input)
    return invoke


def test_new_from_a_file_writes_a_folder_the_loader_reads_back(project, run):
    source = project / "week.json"
    source.write_text(json.dumps(good(), ensure_ascii=False), encoding="utf-8")
    result = run("--from", str(source), "--week", WEEK)
    assert result.exit_code == 0, result.output
    edition = load_edition(project / "items", WEEK)
    assert edition.headline == "José’s “Long Weekend” 🎉"
    assert [i.title for i in edition.items] == ["Evaluation: the real spec.", "A second item."]
    assert edition.items[0].url == "https://bücher.example/notes?a=1#x"
    assert sorted(p.name for p in (project / "items" / WEEK).iterdir()) == [
        "01-evaluation-the-real-spec.md", "02-a-second-item.md", "edition.md"]
    preview = CliRunner().invoke(cli, ["preview", "--week", WEEK])
    assert preview.exit_code == 0, preview.output


def test_new_from_standard_input_and_the_week_in_the_data(project, run):
    result = run("--from", "-", input=json.dumps(good(week="2026-W50")).encode())
    assert result.exit_code == 0, result.output
    assert load_edition(project / "items", "2026-W50").dek.startswith("Three links")


def test_invalid_json_prints_a_line_per_problem_exits_1_and_writes_nothing(project, run):
    before = sorted(p.name for p in (project / "items").iterdir())
    data = good(headline="", items=[item(url="ftp://x")])
    result = run("--from", "-", "--week", WEEK, input=json.dumps(data).encode())
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: <stdin>: $.headline: must not be empty",
        "error: <stdin>: $.items[0].url: must be an http(s) address, got 'ftp://x'",
        "error: <stdin>: not a valid week (2 problem(s)); nothing was written",
    ]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (project / "items").iterdir()) == before


def test_a_missing_file_is_one_line(project, run):
    result = run("--from", "nope.json", "--week", WEEK)
    assert result.exit_code == 1
    assert result.output.strip() == "error: cannot read nope.json: No such file or directory"


def test_the_week_given_twice_must_agree(project, run):
    result = run("--from", "-", "--week", WEEK, input=json.dumps(good(week="2026-W50")).encode())
    assert result.exit_code == 1
    assert "--week 2026-W48 and the JSON's week 2026-W50 differ" in result.output
    assert not (project / "items" / WEEK).exists()


def test_items_goes_without_from(project, run):
    result = run("--from", "-", "--items", "3", input=b"{}")
    assert result.exit_code == 2 and "--items goes without --from" in result.output


def test_an_existing_folder_is_replaced_only_with_force(project, run):
    payload = json.dumps(good()).encode()
    assert run("--from", "-", "--week", WEEK, input=payload).exit_code == 0
    folder = project / "items" / WEEK
    (folder / "notes.txt").write_text("editor's notes")
    again = run("--from", "-", "--week", WEEK, input=json.dumps(good(headline="New")).encode())
    assert again.exit_code == 1 and "exists; give --force" in again.output
    assert load_edition(project / "items", WEEK).headline == "José’s “Long Weekend” 🎉"
    forced = run("--from", "-", "--week", WEEK, "--force",
                 input=json.dumps(good(headline="New")).encode())
    assert forced.exit_code == 0, forced.output
    assert load_edition(project / "items", WEEK).headline == "New"
    assert not (folder / "notes.txt").exists()  # the folder is replaced as a whole


def test_a_week_that_fails_to_load_is_not_written_and_leaves_no_staging(project, tmp_path):
    files = week_files(WeekData(headline="H", items=(ItemData(title="T", body="B"),)))
    files["01-t.md"] = "---\ntitle: T\n---\n"  # no body: the loader refuses it
    with pytest.raises(Exception, match=r"items/2026-W48/01-t\.md: the item has no body.*"
                                        r"nothing was written"):
        write_week(project / "items", WEEK, files, force=False, sent=lambda w: False,
                   verify=True)
    assert sorted(p.name for p in (project / "items").iterdir()) == ["2026-W47"]


# -- the round trip ----------------------------------------------------------------------------

# Any character the loader keeps in a one-line field: no C0/C1 control, no line or paragraph
# separator, no surrogate.
LINE_CHARS = st.characters(blacklist_categories=("Cs", "Cc"),
                           blacklist_characters="\u2028\u2029")
line = st.text(LINE_CHARS, max_size=30).map(str.strip)
required_line = line.filter(bool)
BODY_CHARS = st.one_of(LINE_CHARS, st.sampled_from("\n\r\t"))
body = st.text(BODY_CHARS, min_size=1, max_size=80).filter(lambda s: s.strip())
url = st.sampled_from(["", "https://example.org/a?b=c#d", "http://bücher.example/ü",
                       "https://x.example/:colon #hash"]).map(lambda u: u.split(" ")[0])
items = st.lists(st.fixed_dictionaries({"title": required_line, "body": body},
                                       optional={"take": line, "source": line, "url": url}),
                 min_size=1, max_size=4)
weeks = st.fixed_dictionaries({"headline": required_line, "items": items},
                              optional={"dek": line, "preheader": line, "subject": line,
                                        "intro": st.text(BODY_CHARS, max_size=60)})


def normalized_body(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=weeks)
def test_writing_from_json_then_loading_gives_the_same_values(tmp_path_factory, data):
    items_dir = tmp_path_factory.mktemp("items")
    week = parse_items(json.dumps(data).encode(), "week.json")
    write_week(items_dir, WEEK, week_files(week), force=False, sent=lambda w: False,
               verify=True)
    edition = load_edition(items_dir, WEEK)
    for key in ("headline", "dek", "preheader", "subject"):
        assert getattr(edition, key) == data.get(key, "").strip(), key
    assert edition.intro == normalized_body(data.get("intro", ""))
    assert len(edition.items) == len(data["items"])
    for loaded, given_item in zip(edition.items, data["items"], strict=True):
        assert loaded.title == given_item["title"].strip()
        assert loaded.body == normalized_body(given_item["body"])
        for key in ("take", "source", "url"):
            assert getattr(loaded, key) == given_item.get(key, "").strip(), key


@pytest.mark.parametrize("value", [
    "null", "~", "yes", "2026-02-30", "'quoted'", '"double"', "a: b", "a #b", "#hash",
    "@at", "%pct", "&anchor", "*alias", "!tag", "|pipe", ">fold", "[list]", "{map}", "- dash",
    "ends with colon:", "back\\slash", "noncharacter \ufffe\uffff", "José’s “café” 🎉", "0x1F",
])
def test_values_that_yaml_would_change_are_kept_as_written(tmp_path, value):
    week = WeekData(headline=value, dek=value, items=(ItemData(title=value, body="B",
                                                               take=value),))
    write_week(tmp_path, WEEK, week_files(week), force=False, sent=lambda w: False, verify=True)
    edition = load_edition(tmp_path, WEEK)
    assert (edition.headline, edition.dek) == (value, value)
    assert (edition.items[0].title, edition.items[0].take) == (value, value)


def test_a_body_that_looks_like_front_matter_stays_the_body(tmp_path):
    body = "---\ntitle: not a field\n---\n\nA setext heading\n---\n\n\tcode, tabbed"
    week = WeekData(headline="H", intro="---\nintro: too\n---",
                    items=(ItemData(title="T", body=body),))
    write_week(tmp_path, WEEK, week_files(week), force=False, sent=lambda w: False, verify=True)
    edition = load_edition(tmp_path, WEEK)
    assert edition.items[0].body == body and edition.intro == "---\nintro: too\n---"
    assert edition.items[0].title == "T"
