"""What every command shares for output: the log format."""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_DATEFMT = "%Y-%m-%dT%H:%M:%S%z"
HANDLER_NAME = "newsletter"


def setup_logging(verbose: bool = False) -> None:
    """One line per event on stderr: ISO time with UTC offset, level, message."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATEFMT))
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    # APScheduler's own lines repeat ours ("Running job", "missed by"): keep its real problems.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("apscheduler.executors").setLevel(
        logging.DEBUG if verbose else logging.ERROR)
