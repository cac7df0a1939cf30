"""A spam score from SpamAssassin, with local rules only: through spamd, else the command.

``spamc`` is tried first (a running ``spamd`` answers in milliseconds); when it is missing or
no spamd answers, ``spamassassin -L`` scores the message itself. Both print the same report
table, which ``parse_report`` reads. Neither installed is a note, not an error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from .findings import Finding, error, note, warning

_DETAILS = re.compile(r"Content analysis details:\s*\((-?[\d.]+) points?, (-?[\d.]+) required\)")
_HIT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*?)\s*$")
_MORE = re.compile(r"^\s{4,}(\S.*?)\s*$")


@dataclass(frozen=True)
class SpamHit:
    name: str
    points: float
    description: str


@dataclass(frozen=True)
class SpamResult:
    score: float
    threshold: float
    hits: tuple[SpamHit, ...]
    tool: str = "spamassassin"


class SpamUnavailable(Exception):
    """Neither spamc (with a spamd) nor spamassassin could score the message."""


def parse_report(output: str, tool: str = "spamassassin") -> SpamResult:
    """Read SpamAssassin's report table (the last one in ``output``)."""
    matches = list(_DETAILS.finditer(output))
    if not matches:
        raise ValueError("no SpamAssassin report in the output")
    last = matches[-1]
    hits: list[SpamHit] = []
    started = False
    for line in output[last.end():].splitlines():
        if not started:
            started = line.startswith("----")
        elif not line.strip():
            if hits:
                break
        elif hit := _HIT.match(line):
            hits.append(SpamHit(hit.group(2), float(hit.group(1)), hit.group(3)))
        elif (more := _MORE.match(line)) and hits:
            name, points, description = hits[-1].name, hits[-1].points, hits[-1].description
            hits[-1] = SpamHit(name, points, f"{description} {more.group(1)}")
    return SpamResult(float(last.group(1)), float(last.group(2)), tuple(hits), tool)


Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class SpamAssassin:
    """Score a message: spamc against spamd at host:port, else ``spamassassin -L``."""

    host: str = "127.0.0.1"
    port: int = 783
    timeout: float = 120.0
    which: Callable[[str], str | None] = shutil.which
    run: Runner = subprocess.run

    def __call__(self, message: bytes) -> SpamResult:
        spamc = self.which("spamc")
        if spamc:
            done = self.run(
                [spamc, "-R", "-x", "-d", self.host, "-p", str(self.port),
                 "-t", str(int(self.timeout)), "-s", str(max(len(message) + 1024, 512_000))],
                input=message, capture_output=True, timeout=self.timeout + 5,
            )
            if done.returncode == 0:
                return parse_report(done.stdout.decode("utf-8", "replace"), "spamc")
        command = self.which("spamassassin")
        if not command:
            raise SpamUnavailable("SpamAssassin is not installed (no spamc with a running "
                                  "spamd, no spamassassin command)")
        done = self.run(
            [command, "-L", "-t", "-x", "--cf=report_safe 0"],
            input=message, capture_output=True, timeout=self.timeout,
        )
        output = done.stdout.decode("utf-8", "replace")
        if done.returncode != 0 or "Content analysis details" not in output:
            reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise RuntimeError(f"spamassassin exited {done.returncode}: "
                               f"{reason[-1] if reason else 'no report'}")
        return parse_report(output, "spamassassin")


_TOOLS = {"spamc": "through spamd", "spamassassin": "local rules"}


def spam_findings(result: SpamResult) -> list[Finding]:
    counted = [h for h in result.hits if h.points > 0]
    others = [h for h in result.hits if h.points <= 0]
    summary = f"SpamAssassin scores it {_points(result.score)} ({_points(result.threshold)} " \
              f"is spam; {_TOOLS.get(result.tool, result.tool)})."
    if others:
        summary += " Also hit (0 points or fewer): " + ", ".join(
            h.name if h.points == 0 else f"{h.name} {_points(h.points)}" for h in others) + "."
    if result.score >= result.threshold:
        head = error("spam.score", summary, "Fix the rules below until it scores 0.0 or less.")
    elif result.score > 0:
        head = warning("spam.score", summary, "Aim for 0.0 or less: fix the rules below.")
    else:
        head = note("spam.score", summary)
    return [head] + [
        warning("spam.rule", f"{h.name} (+{_points(h.points)}): {h.description}")
        for h in counted
    ]


def _points(value: float) -> str:
    return f"{value:.1f}" if value else "0.0"  # SpamAssassin prints -0.0 for tiny negatives


def check_spam(message: bytes, scorer: Callable[[bytes], SpamResult]) -> list[Finding]:
    try:
        result = scorer(message)
    except SpamUnavailable as exc:
        return [note("spam.unavailable", f"Spam score not checked: {exc}.",
                     "Install SpamAssassin (Debian: apt-get install spamassassin spamc) to "
                     "score each edition before it goes out.")]
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
        return [warning("spam.failed", f"The spam check failed: {exc}",
                        "Run spamassassin -L -t on a dry-run .eml to see why.")]
    return spam_findings(result)
