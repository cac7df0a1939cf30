"""The preflight report: findings with a severity, in a stable order, and a one-line verdict."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"      # the edition must not go out like this
    WARNING = "warning"  # it may go out, but readers or filters will notice
    NOTE = "note"        # for information

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.NOTE: 2}

# The areas in report order; a finding's code starts with its area ("links.http").
AREAS = {
    "content": "Content",
    "links": "Links and images",
    "clients": "Email clients",
    "message": "Headers and footer",
    "spam": "Spam score",
    "dns": "Sending domain",
}


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str
    fix: str = ""

    @property
    def area(self) -> str:
        return self.code.partition(".")[0]

    def as_dict(self) -> dict[str, str]:
        return {
            "severity": str(self.severity),
            "area": self.area,
            "code": self.code,
            "message": self.message,
            "fix": self.fix,
        }


def error(code: str, message: str, fix: str = "") -> Finding:
    return Finding(Severity.ERROR, code, message, fix)


def warning(code: str, message: str, fix: str = "") -> Finding:
    return Finding(Severity.WARNING, code, message, fix)


def note(code: str, message: str, fix: str = "") -> Finding:
    return Finding(Severity.NOTE, code, message, fix)


def _order(finding: Finding) -> tuple:
    areas = list(AREAS)
    area = areas.index(finding.area) if finding.area in AREAS else len(areas)
    return (area, finding.severity.rank, finding.code, finding.message)


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...] = ()
    title: str = ""
    counts: dict[Severity, int] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.findings, key=_order))
        object.__setattr__(self, "findings", ordered)
        counts = {s: 0 for s in Severity}
        for finding in ordered:
            counts[finding.severity] += 1
        object.__setattr__(self, "counts", counts)

    @classmethod
    def of(cls, findings: Iterable[Finding], title: str = "") -> Report:
        return cls(tuple(findings), title)

    @property
    def ok(self) -> bool:
        """Ready to send: no errors (warnings and notes do not stop a send)."""
        return self.counts[Severity.ERROR] == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def summary(self) -> str:
        parts = [
            _plural(self.counts[s], s.value)
            for s in Severity
            if self.counts[s]
        ]
        verdict = "ready to send" if self.ok else "not ready to send"
        return f"{', '.join(parts)}: {verdict}" if parts else verdict

    def by_area(self) -> list[tuple[str, list[Finding]]]:
        groups: dict[str, list[Finding]] = {}
        for finding in self.findings:
            groups.setdefault(finding.area, []).append(finding)
        return list(groups.items())

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
