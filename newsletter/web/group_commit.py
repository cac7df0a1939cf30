"""Many small writes, one transaction: the web's one-click unsubscribes under a burst.

A mailbox provider's unsubscribe buttons can arrive hundreds a second. Each request waits for
its own outcome, but while one transaction is being written the next requests queue up, and
they are then written together, on one thread, in one transaction (one commit, one fsync on
SQLite with ``synchronous=FULL``). A request is answered only after the transaction holding
it committed, so a 200 always means "recorded"; under light load a batch is one request and
nothing waits. One thread also keeps the event loop from fighting a pool of threads for the
GIL.

A batch that fails is tried again request by request, so one bad request cannot fail the
others; but an error in ``unavailable`` (the database locked by someone else) fails the whole
batch at once: each request tried alone would only wait for the same lock again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MAX_BATCH = 256


class GroupCommit:
    def __init__(self, write: Callable[[list[Any]], Sequence[Any]], *,
                 unavailable: tuple[type[BaseException], ...] = ()):
        self._write = write  # items -> one result per item, in one transaction
        self._unavailable = unavailable
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._busy = False
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-commit")

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((item, future))
        if not self._busy:
            self._busy = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                items = [item for item, _ in batch]
                try:
                    results = await loop.run_in_executor(self._executor, self._write, items)
                except self._unavailable as exc:
                    _fail(batch, exc)
                    continue
                except Exception as exc:
                    if len(batch) == 1:  # alone already: trying it again would repeat the wait
                        _fail(batch, exc)
                    else:  # keep one bad request from failing the others: each on its own
                        await self._one_by_one(loop, batch)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._busy = False

    async def _one_by_one(self, loop, batch) -> None:
        for item, future in batch:
            try:
                (result,) = await loop.run_in_executor(self._executor, self._write, [item])
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _fail(batch: list[tuple[Any, asyncio.Future]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
