"""Whether a week's edition is ready to go: its folder exists, loads, renders, and the
preflight check finds no error in it (SpamAssassin and DNS left out: this must stay fast
enough to run for every upcoming week at once, as ``newsletter worker --next`` does)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import NewsletterError


@dataclass(frozen=True)
class Readiness:
    week: str
    state: str    # ready | missing | not ready
    detail: str = ""

    @property
    def line(self) -> str:
        if not self.detail:
            return self.state
        return f"ready ({self.detail})" if self.state == "ready" else \
            f"{self.state}: {self.detail}"


def week_readiness(config: Config, week: str) -> Readiness:
    folder = Path(config.items_dir) / week
    if not folder.is_dir():
        return Readiness(week, "missing", f"no folder {folder} (newsletter new --week {week})")
    from ..preflight.findings import Severity
    from ..preflight.project import check_week

    try:
        report = check_week(config, week, spam=None)
    except NewsletterError as exc:
        return Readiness(week, "not ready", str(exc))
    errors = [f for f in report.findings if f.severity is Severity.ERROR]
    if errors:
        more = f" (and {len(errors) - 1} more: newsletter check --week {week})" \
            if len(errors) > 1 else ""
        return Readiness(week, "not ready", errors[0].message + more)
    warnings = report.counts[Severity.WARNING]
    noted = f"{warnings} warning{'s' if warnings > 1 else ''}: newsletter check --week {week}"
    return Readiness(week, "ready", noted if warnings else "")
