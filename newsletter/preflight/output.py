"""The report as text for a terminal (grouped by area, one screen) or as JSON for scripts."""

from __future__ import annotations

import json
import textwrap

from .findings import AREAS, Report, Severity

_LABEL = {Severity.ERROR: "error", Severity.WARNING: "warn", Severity.NOTE: "note"}
_INDENT = 9  # two spaces, the label padded to five, two spaces


def to_text(report: Report, *, width: int = 100) -> str:
    lines: list[str] = []
    if report.title:
        lines += [report.title, ""]
    for area, findings in report.by_area():
        lines.append(AREAS.get(area, area.capitalize()))
        for finding in findings:
            head = f"  {_LABEL[finding.severity]:<5}  "
            lines += _wrap(f"{finding.message} [{finding.code}]", head, width)
            if finding.fix:
                lines += _wrap(f"fix: {finding.fix}", " " * _INDENT, width)
        lines.append("")
    lines.append(report.summary)
    return "\n".join(lines) + "\n"


def _wrap(text: str, first: str, width: int) -> list[str]:
    return textwrap.wrap(
        text, width=width, initial_indent=first, subsequent_indent=" " * _INDENT,
        break_long_words=False, break_on_hyphens=False,
    ) or [first.rstrip()]


def to_json(report: Report) -> str:
    document = {
        "title": report.title,
        "summary": report.summary,
        "ready": report.ok,
        "counts": {str(s): n for s, n in report.counts.items()},
        "findings": [f.as_dict() for f in report.findings],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
