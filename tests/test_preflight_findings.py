"""The preflight report: stable order, the one-line verdict, text for a terminal, JSON."""

import json

from newsletter.preflight import Report, Severity, to_json, to_text
from newsletter.preflight.findings import error, note, warning


def test_findings_come_grouped_by_area_then_by_severity_whatever_the_input_order():
    findings = [
        note("dns.skipped", "Sending domain not checked."),
        warning("links.http", "1 link uses http://"),
        error("content.html-size", "The HTML is 104.0 KB"),
        note("content.preheader-repeats", "The preheader repeats the subject"),
        error("links.local", "1 link points at localhost"),
    ]
    expected = ["content.html-size", "content.preheader-repeats", "links.local", "links.http",
                "dns.skipped"]
    assert Report.of(findings).codes() == expected
    assert Report.of(reversed(findings)).codes() == expected


def test_the_summary_counts_each_severity_and_says_whether_it_may_go_out():
    report = Report.of([error("links.local", "a"), error("content.subject-empty", "b"),
                        warning("links.http", "c"), note("dns.skipped", "d"),
                        note("spam.score", "e"), note("clients.partial", "f")])
    assert report.summary == "2 errors, 1 warning, 3 notes: not ready to send"
    assert not report.ok and report.exit_code == 1
    assert Report.of([warning("links.http", "c")]).summary == "1 warning: ready to send"
    assert Report.of([]).summary == "ready to send"
    assert Report.of([note("dns.skipped", "d")]).exit_code == 0


def test_text_output_groups_by_area_and_ends_with_the_summary():
    report = Report.of([
        error("message.postal-missing", "No postal address is configured.",
              "Set postal_address."),
        warning("content.subject-long", "The subject “Grüße aus Köln 🎉” is long."),
    ], title="2026-W47: Grüße")
    text = to_text(report)
    lines = text.splitlines()
    assert lines[0] == "2026-W47: Grüße"
    assert lines.index("Content") < lines.index("Headers and footer")
    assert "  warn   The subject “Grüße aus Köln 🎉” is long. [content.subject-long]" in lines
    assert "         fix: Set postal_address." in lines
    assert lines[-1] == "1 error, 1 warning: not ready to send"


def test_text_output_wraps_long_findings_within_the_width():
    report = Report.of([warning("clients.partial", "word " * 80, "fix " * 40)])
    lines = to_text(report, width=80).splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert all(line.startswith(" " * 9) for line in lines[2:-2] if line)


def test_json_output_carries_every_field_and_keeps_non_ascii():
    report = Report.of([warning("content.subject-long", "Subject “José” 🎉", "Shorten it.")],
                       title="2026-W47")
    document = json.loads(to_json(report))
    assert document["ready"] is True
    assert document["summary"] == "1 warning: ready to send"
    assert document["counts"] == {"error": 0, "warning": 1, "note": 0}
    assert document["findings"] == [{
        "severity": "warning", "area": "content", "code": "content.subject-long",
        "message": "Subject “José” 🎉", "fix": "Shorten it.",
    }]
    assert "“José” 🎉" in to_json(report)


def test_severity_is_a_string_enum():
    assert Severity("error") is Severity.ERROR
    assert [s.value for s in Severity] == ["error", "warning", "note"]
