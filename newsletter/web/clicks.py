"""``GET /r/{token}``: a counted link of an edition's item (``click_counts``).

The route exists only when ``click_counts`` is on (``app._routes``). A token that verifies
(``edition.click_tokens``: signed with ``secret_key`` or one of ``secret_key_previous``)
answers ``302`` to the URL it carries, the one redirect the app makes; any other token is
not found, so the route never sends anyone where a stranger chose. HEAD is answered the same
(and counted as filtered). The answer is never stored (``no-store``: each click comes back
here) nor indexed.

The fetch is counted in memory (``clicks.counter``) and written by ``ClickWriter`` in the
background every ``WRITE_EVERY`` seconds, so the redirect never waits on the database: when
the database is down the reader still gets where they were going, and the counts wait in
memory (and are written when it is back). What a web process holds at shutdown is written
then (the lifespan); a process killed outright loses at most its last few seconds of counts.
Nothing about the reader is kept: the address and user agent are looked at to judge the
fetch and become a keyed hash held in memory for two seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.requests import Request
from starlette.responses import Response

from ..clicks.counter import ClickCounter
from ..clicks.fetches import why_filtered
from ..edition.click_tokens import BadClickToken, read_click_token
from .common import client_ip, in_thread, not_found, web

log = logging.getLogger("newsletter.web")

WRITE_EVERY = 1.0  # seconds between the background writes
REDIRECT_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


async def follow(request: Request) -> Response:
    try:
        target = read_click_token(web(request).keys, request.path_params["token"])
    except BadClickToken:
        return not_found(request)
    counter: ClickCounter = request.app.state.clicks.counter
    counter.fetched(target, ip=client_ip(request),
                    user_agent=request.headers.get("user-agent", ""),
                    filtered=why_filtered(request.method, request.headers) is not None)
    return Response(status_code=302, headers={"Location": target.url, **REDIRECT_HEADERS})


class ClickWriter:
    """The app's click counter, and the background task that writes its tallies."""

    def __init__(self, counter: ClickCounter, *, every: float = WRITE_EVERY):
        self.counter, self._every = counter, every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="click-counts")

    async def stop(self) -> None:
        """Stop the task, then write everything held (shutting down)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.write(everything=True)

    async def write(self, *, everything: bool = False) -> int:
        try:
            return await in_thread(self.counter.write, everything=everything)
        except Exception as exc:  # the database is away: the tallies wait for the next write
            log.warning("click counts not written yet: %s", " ".join(str(exc).split())[:200])
            return 0

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            await self.write()
