"""What every command shares for output: warnings on stderr, and the log format.

Every command starts with ``setup_cli_output``: a warning (a file in a week's folder that is
not an item, an environment variable that is no config key) is one ``warning: ...`` line on
stderr, and with the global ``--verbose`` so are the informational and debug lines (Alembic's
migration steps among them). Long-running commands (send, worker, web) switch to
``setup_logging``: one line per event with the time, as text or, with ``log_format = "json"``,
as one JSON object (``newsletter.logs``) for a log shipper.
"""

from __future__ import annotations

import logging
import sys

import click

from ..logs import JsonFormatter, LogContext

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_DATEFMT = "%Y-%m-%dT%H:%M:%S%z"
HANDLER_NAME = "newsletter"
_state = {"verbose": False, "json": False}


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def setup_cli_output(verbose: bool = False) -> None:
    """``warning: ...`` lines on stderr; with ``verbose``, ``info:`` and ``debug:`` lines too."""
    _state["verbose"] = verbose
    _state["json"] = False  # until a long command sets up JSON logging
    handler = _Stderr()
    handler.setFormatter(_LevelFormatter())
    _install(handler, logging.DEBUG if verbose else logging.WARNING)


def setup_logging(verbose: bool = False, log_format: str = "text") -> None:
    """One line per event on stderr: ISO time with UTC offset, level, message; with
    ``log_format`` "json", one JSON object (time, level, logger, message, week, send, exc).

    Every logger reaches this one handler on the root, uvicorn's among them (the web server
    runs with ``log_config=None``), so both formats cover every line."""
    verbose = verbose or _state["verbose"]
    _state["json"] = log_format == "json"
    handler = _Stderr()
    handler.setFormatter(_formatter(log_format))
    handler.addFilter(LogContext())  # the week and send of the line, for the JSON format
    _install(handler, logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    # APScheduler's own lines repeat ours ("Running job", "missed by"): keep its real problems.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("apscheduler.executors").setLevel(
        logging.DEBUG if verbose else logging.ERROR)


def _formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(LOG_FORMAT, LOG_DATEFMT)


def error_line(message: str) -> None:
    """The one line a failed command ends with: ``error: ...`` on stderr or, once a long
    command has set up JSON logging, a JSON object like its other lines (level "ERROR")."""
    if _state["json"]:
        logging.getLogger("newsletter.cli").error("%s", message)
    else:
        click.echo(f"error: {message}", err=True)


def verbose() -> bool:
    """Whether the global ``--verbose`` was given."""
    return _state["verbose"]


def _install(handler: logging.Handler, level: int) -> None:
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
