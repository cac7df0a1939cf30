"""One log line per request, without tokens: method, path, status, milliseconds.

The token in ``/unsubscribe/<token>`` and ``/confirm/<token>`` is a key to someone's
subscription, and a query string may hold an address: neither is ever logged. Nor is which
counted link (``/r/<token>``) was followed when: the click counts are all that is kept of it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("newsletter.web.access")

_TOKEN_PATH = re.compile(r"^/(unsubscribe|confirm|r)/[^/]*")


async def answered(app: ASGIApp, scope: Scope, receive: Receive, send: Send,
                   then: Callable[[int, float], None]) -> None:
    """Run ``app`` on an HTTP request, then call ``then(status, seconds)``: the status it
    answered (500 if it raised before answering) and how long it took."""
    start = time.perf_counter()
    status = 500

    async def send_and_note(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, send_and_note)
    finally:
        then(status, time.perf_counter() - start)


def loggable_path(path: str) -> str:
    return _TOKEN_PATH.sub(r"/\1/[token]", path)


class AccessLog:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        def line(status: int, seconds: float) -> None:
            if log.isEnabledFor(logging.INFO):
                log.info("%s %s %d %.1fms", scope["method"], loggable_path(scope["path"]),
                         status, seconds * 1000)

        await answered(self.app, scope, receive, send, line)
