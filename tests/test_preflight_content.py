"""Content rules: HTML size, the text part, subject, preheader, leftover markers."""

import pytest

from newsletter.preflight.content import check_preheader, check_size, check_subject, check_text_part
from newsletter.preflight.findings import Severity
from newsletter.preflight.htmlscan import parse
from newsletter.preflight.markers import check_markers

BODY = ("<p>Grüße aus Köln: José’s “notes” on evaluation suites, handoffs and provenance, "
        "with a look at small models 🎉.</p>")
TEXT = "Grüße aus Köln: José’s “notes” on evaluation suites, handoffs and provenance, " \
       "with a look at small models 🎉.\n"


def page(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>"


def codes(findings):
    return [(f.severity.value, f.code) for f in findings]


def padded(size: int) -> str:
    html = page(BODY)
    return html.replace("</body>", "<p>" + "x" * (size - len(html.encode()) - 7) + "</p></body>")


def test_html_over_gmails_clipping_limit_is_an_error():
    html = padded(102 * 1024 + 1)
    assert len(html.encode()) == 102 * 1024 + 1
    [finding] = check_size(html)
    assert (finding.severity, finding.code) == (Severity.ERROR, "content.html-size")
    assert "102.0 KB" in finding.message and "Gmail clips" in finding.message


def test_html_from_90_kb_is_a_warning_and_below_it_passes():
    assert codes(check_size(padded(90 * 1024 + 1))) == [("warning", "content.html-size")]
    assert check_size(padded(90 * 1024)) == []


def test_size_counts_bytes_not_characters():
    html = page("<p>" + "é" * (46 * 1024) + "</p>")  # 46 K characters, 92 KB
    assert codes(check_size(html)) == [("warning", "content.html-size")]


def test_a_missing_or_blank_text_part_is_an_error():
    doc = parse(page(BODY))
    assert codes(check_text_part(doc, "")) == [("error", "content.text-missing")]
    assert codes(check_text_part(doc, " \n\t\n")) == [("error", "content.text-missing")]


def test_a_text_part_unlike_the_html_is_a_warning():
    doc = parse(page(BODY))
    [finding] = check_text_part(doc, "View this email in your browser: https://x.example/w47\n")
    assert finding.code == "content.text-differs" and finding.severity is Severity.WARNING
    assert "0%" in finding.message


def test_a_text_part_with_the_same_words_passes_even_with_urls_and_other_case():
    doc = parse(page(BODY + "<p>Read <a href='https://bücher.example/a'>more</a></p>"))
    text = TEXT.upper() + "\nRead more (https://bücher.example/a)\n"
    assert check_text_part(doc, text) == []


def test_hidden_text_does_not_count_toward_the_html_words():
    hidden = "<div style='display:none'>" + "preheader words " * 50 + "</div>"
    assert check_text_part(parse(page(hidden + BODY)), TEXT) == []


def test_subject_with_curly_quotes_and_emoji_passes():
    assert check_subject("José’s “Weekly” 🎉 notes from bücher.example") == []


@pytest.mark.parametrize("char, name", [
    ("\r", "CR"), ("\n", "LF"), ("\v", "VT"), ("\0", "NUL"), ("\u2028", "line separator"),
])
def test_control_characters_in_the_subject_are_an_error(char, name):
    [finding] = check_subject(f"José’s notes{char}Bcc: x@example.com")
    assert finding.code == "content.subject-control" and finding.severity is Severity.ERROR
    assert name in finding.message


def test_empty_and_long_subjects():
    assert codes(check_subject("  ")) == [("error", "content.subject-empty")]
    assert codes(check_subject("“" + "é" * 70 + "”")) == [("warning", "content.subject-long")]
    assert check_subject("é" * 70) == []


def test_preheader_rules():
    subject = "Five Things | Small Teams"
    assert check_preheader("Five ideas on feedback, in a four-minute read 🎉", subject) == []
    assert codes(check_preheader("", subject)) == [("warning", "content.preheader-missing")]
    assert codes(check_preheader("x" * 151, subject)) == [("warning", "content.preheader-long")]
    assert codes(check_preheader("five things | small teams", subject)) == \
        [("note", "content.preheader-repeats")]
    assert codes(check_preheader("José\u2028notes", subject)) == \
        [("error", "content.preheader-control")]


def markers(**parts):
    values = {"subject": "José’s notes", "preheader": "Five ideas", "html": page(BODY),
              "text": TEXT}
    values.update(parts)
    return check_markers(**values)


def test_a_clean_edition_has_no_markers_even_with_braces_in_its_css():
    css = "<style>@media (max-width:480px){.a{color:red}}#x{margin:0}</style>"
    assert markers(html=page(BODY, head=css)) == []


def test_a_leftover_recipient_placeholder_is_an_error_naming_the_part():
    [finding] = markers(html=page("<p>Hi @@nl0123456789ab:first_name@@,</p>"))
    assert (finding.severity, finding.code) == (Severity.ERROR, "content.placeholder-left")
    assert "HTML part" in finding.message and "@@nl0123456789ab:first_name@@" in finding.message


def test_leftover_jinja_syntax_is_an_error_in_any_part():
    [in_text] = markers(text="Hi {{ first_name }}, José’s notes\n")
    assert in_text.code == "content.template-left"
    assert in_text.message == "The text part contains template syntax: '{{ first_name }}'."
    [in_subject] = markers(subject="{% if x %}News{% endif %}")
    assert in_subject.message.startswith("The subject contains template syntax: '{% if x %}'")
    [in_html] = markers(html=page("<p>{# note #} José</p>"))
    assert in_html.code == "content.template-left"


def test_one_finding_names_every_part_with_the_same_leftover():
    [finding] = markers(html=page("<p>Hi {{ first_name }}</p>"), text="Hi {{ first_name }}\n")
    assert finding.message == \
        "The HTML part and text part contain template syntax: '{{ first_name }}'."
