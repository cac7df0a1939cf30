"""Jinja's undefined-variable errors as a user reads them: the template's file and line, and
the variable as written there (``recipient.nickname``), never an internal class name."""

from __future__ import annotations

import re
import traceback
from pathlib import Path

from .placeholders import RECIPIENT_FIELDS

_NO_ATTRIBUTE = re.compile(r"^'[\w.]+ object' has no attribute '([^']+)'$")


def location(exc: BaseException, name: str) -> tuple[str, int | None]:
    """Jinja rewrites tracebacks so template frames carry the template's file and line."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    if frames:
        return frames[-1].filename, frames[-1].lineno
    return name, None


def undefined_message(exc: BaseException, name: str) -> str:
    """``file:line: what is undefined``."""
    filename, lineno = location(exc, name)
    where = f"{filename}:{lineno}" if lineno else filename
    message = getattr(exc, "message", None) or str(exc)
    match = _NO_ATTRIBUTE.match(message)
    if not match:
        return f"{where}: {message}"
    attribute = match[1]
    expression = _expression(filename, lineno, attribute)
    hint = ""
    if expression.startswith("recipient."):
        hint = (f" (recipient fields: {', '.join(RECIPIENT_FIELDS)} and attributes.<column>, "
                "one per extra CSV column)")
    return f"{where}: {expression} is undefined{hint}"


def _expression(filename: str, lineno: int | None, attribute: str) -> str:
    """``a.b.attribute`` as written on the template's line, else just the attribute."""
    try:
        line = Path(filename).read_text(encoding="utf-8").splitlines()[(lineno or 1) - 1]
    except (OSError, IndexError, UnicodeDecodeError):
        return repr(attribute)
    found = re.search(rf"([A-Za-z_][\w.]*)\.{re.escape(attribute)}\b", line)
    return f"{found[1]}.{attribute}" if found else repr(attribute)
