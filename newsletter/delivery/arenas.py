"""Fewer malloc arenas for a send.

A send allocates from the event loop's thread and from the threads that record batches,
claim them and check the brake. glibc gives each such thread an arena of its own (up to eight
per CPU), and memory freed in one is not reused by the others: the process's peak then grows
with the length of the send although what it holds does not. Python allocates under its
one lock anyway, so sharing two arenas costs no waiting. glibc fixes the number the first
time a second thread allocates: the commands that send call this before they start any
thread. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes

M_ARENA_MAX = -8  # glibc's <malloc.h>
ARENAS = 2


def limit_arenas(n: int = ARENAS) -> bool:
    """Cap the arenas the process's threads may create; True where glibc took it."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, n))
