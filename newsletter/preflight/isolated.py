"""The check a send runs first, in a process of its own.

The report is the same as ``project.check_week``'s (a send remembers it: ``verdicts``);
running it apart keeps what the check loads (the client-support data, the CSS and DNS
libraries, a second render of the edition) out of the sending process, whose memory must
stay flat for the whole send. A fresh interpreter (``spawn``), not a fork: the caller may hold
database connections and threads.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from ..config import Config
from ..errors import NewsletterError
from .findings import Report

T = TypeVar("T")


def check_hashed_apart(config: Config, week: str) -> tuple[Report, str]:
    """``check_week_hashed(config, week)`` in a child process (its exceptions are raised
    here): the report, and the content hash of the edition it checked."""
    from . import project

    return _apart(project.check_week_hashed, config, week)


def _apart(function: Callable[..., T], *args: object) -> T:
    with ProcessPoolExecutor(max_workers=1,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(function, *args).result()
        except BrokenProcessPool as exc:  # killed (out of memory, a signal): nothing was sent
            raise NewsletterError(f"the preflight check stopped before it finished ({exc}); "
                                  "nothing was sent") from None
