"""The web process's background sender of confirmation mails (the outbox in
``delivery.confirmations``): woken by each sign-up, and otherwise when the next retry is due,
at least every ``IDLE`` seconds (the worker, or another web process, may have queued mail)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from datetime import datetime

from ..delivery import confirmations

log = logging.getLogger("newsletter.web")

IDLE = 60.0


class OutboxSender:
    def __init__(self, state):
        self._state = state  # the app's state: config, engine, clock, http_transport
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        # Set after every drain that sent something; tests wait on it instead of sleeping.
        self.sent = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._wake = asyncio.Event()  # bound to the running loop
        self._task = asyncio.create_task(self._run(), name="confirmation-outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drain_once(self) -> int:
        state = self._state
        options = {}
        if state.http_transport is not None:
            options["transport"] = state.http_transport
        sent = await confirmations.adrain_outbox(state.config, state.engine, clock=state.clock,
                                                 **options)
        if sent:
            log.info("confirmation mails sent: %d", sent)
            self.sent.set()
        return sent

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.drain_once()
                due = await asyncio.to_thread(confirmations.next_due, self._state.engine)
            except Exception as exc:  # the database or provider is down: try again later
                log.warning("confirmation outbox: %s", " ".join(str(exc).split())[:300])
                due = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._delay(due))

    def _delay(self, due: datetime | None) -> float:
        if due is None:
            return IDLE
        wait = (due - self._state.clock()).total_seconds()
        return min(IDLE, max(1.0, wait))
