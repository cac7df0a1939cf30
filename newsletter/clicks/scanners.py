"""The user agents of link scanners, previews, crawlers and HTTP libraries
(``data/scanner_agents.txt``, a maintained list: its header says where it comes from)."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files

LIST = "scanner_agents.txt"


def fragments(text: str) -> list[str]:
    """The list's fragments: one a line, without blank lines and # comments."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern[str]:
    text = files(__package__).joinpath("data", LIST).read_text(encoding="utf-8")
    alternatives = sorted({f.lower() for f in fragments(text)}, key=len, reverse=True)
    return re.compile("|".join(re.escape(a) for a in alternatives))


def is_scanner(user_agent: str) -> bool:
    """Whether ``user_agent`` contains a fragment of the list (case aside)."""
    return _pattern().search(user_agent.lower()) is not None
