"""What a log line carries besides its message, and the JSON form of a line.

``about(week, send)`` marks everything logged inside it, in this thread and in the asyncio
tasks and ``to_thread`` calls it starts (they copy the context), as being about that week's
send: ``LogContext``, a filter on the handler, copies the two onto each record, so no log call
has to pass them. A call may still pass its own with ``extra={"week": ..., "send": ...}``.

``JsonFormatter`` (``log_format = "json"``) writes each record as one JSON object on one line,
for log shippers: ``time`` (UTC, milliseconds, ``Z``), ``level``, ``logger``, ``message``,
then ``week`` and ``send`` where known and ``exc`` (the traceback) where there is one. The text
format ignores both fields, so its lines stay as they were.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

FIELDS = ("week", "send")  # the record attributes a JSON line takes when they are set

_week: ContextVar[str | None] = ContextVar("newsletter_log_week", default=None)
_send: ContextVar[int | None] = ContextVar("newsletter_log_send", default=None)


@contextmanager
def about(week: str | None, send: int | None = None) -> Iterator[None]:
    """Every line logged inside is about ``week`` (and the send with id ``send``); an outer
    ``about``'s values stay for those not given."""
    week_token = _week.set(week if week is not None else _week.get())
    send_token = _send.set(send if send is not None else _send.get())
    try:
        yield
    finally:
        _send.reset(send_token)
        _week.reset(week_token)


class LogContext(logging.Filter):
    """Puts the current ``about`` values on each record that has none of its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("week", _week), ("send", _send)):
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        exc = self._traceback(record)
        if exc:
            line["exc"] = exc
        return one_line_json(line)

    def _traceback(self, record: logging.LogRecord) -> str:
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts)


def one_line_json(value: dict[str, Any]) -> str:
    """``value`` as JSON with non-ASCII text readable (’, é), on exactly one line: json
    escapes CR and LF inside strings, but leaves U+2028 and U+2029, which some readers take
    for line breaks, as they are; those are escaped too."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def utc_time(created: float) -> str:
    """A record's time as ISO 8601 in UTC with milliseconds: 2026-11-16T07:00:00.123Z."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"
