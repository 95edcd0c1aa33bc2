"""Group commit: messages handed over one at a time (as a FastStream subscriber hands them) are applied in
batches, so that many inputs share one transaction under load while a lone input is applied at once.

A message joins the next batch; up to `parallel` batches run at a time, each of at most `batch_size`
messages; whatever arrives while they run makes up the following batches. The batch handler settles every
message of its batch itself (ack, nak or term). Nothing here bounds how many wait: the consumer's
`max_ack_pending` does (the server hands out no more until some are settled).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

M = TypeVar("M")


class GroupCommit(Generic[M]):
    def __init__(
        self, handle: Callable[[Sequence[M]], Awaitable[None]], batch_size: int, parallel: int
    ) -> None:
        self._handle = handle
        self._batch_size = batch_size
        self._parallel = parallel
        self._waiting: list[M] = []
        self._running: set[asyncio.Task[None]] = set()

    def put(self, message: M) -> None:
        self._waiting.append(message)
        self._start_batches()

    async def drain(self) -> None:
        """Return once every message put so far is handled (call it after the last `put`)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _start_batches(self) -> None:
        while self._waiting and len(self._running) < self._parallel:
            batch = self._waiting[: self._batch_size]
            del self._waiting[: self._batch_size]
            task = asyncio.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._finished)

    async def _run(self, batch: list[M]) -> None:
        try:
            await self._handle(batch)
        except Exception:
            # A bug must not stop the consumer; unsettled, the messages come again after the ack wait.
            log.exception("handling a batch of %d messages failed", len(batch))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start_batches()
