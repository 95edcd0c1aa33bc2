"""Group commit: messages handed over one at a time (as a FastStream subscriber hands them) are applied in
batches, so that many inputs share one transaction under load while a lone input is applied at once.

A message joins the next batch; up to `parallel` batches run at a time, each of at most `batch_size`
messages; whatever arrives while they run makes up the following batches. The batch handler settles every
message of its batch itself (ack, nak or term). Nothing here bounds how many wait: the consumer's
`max_ack_pending` does (the server hands out no more until some are settled).

Order per key: with `key` (a message's job, say), a message whose key is in a running batch waits until
that batch has ended, so one key's messages are applied in the order they came, each batch after the one
before has committed. Without it, two batches running at once would race for the job's row lock, and the
later input (a trainer's `done`) could be applied before the earlier one (its last log lines), which the
ended attempt then refuses. Messages with no key (None) wait for nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

M = TypeVar("M")

Key = Callable[[M], Hashable | None]


class GroupCommit(Generic[M]):
    def __init__(
        self,
        handle: Callable[[Sequence[M]], Awaitable[None]],
        batch_size: int,
        parallel: int,
        key: Key[M] | None = None,
    ) -> None:
        self._handle = handle
        self._batch_size = batch_size
        self._parallel = parallel
        self._key = key
        self._waiting: list[M] = []
        self._running: dict[asyncio.Task[None], set[Hashable]] = {}
        self._busy: set[Hashable] = set()  # the keys of the running batches

    def put(self, message: M) -> None:
        self._waiting.append(message)
        self._start_batches()

    async def drain(self) -> None:
        """Return once every message put so far is handled (call it after the last `put`)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _start_batches(self) -> None:
        while self._waiting and len(self._running) < self._parallel:
            batch, keys = self._next_batch()
            if not batch:
                return  # every waiting message's key is in a running batch
            task = asyncio.create_task(self._run(batch))
            self._running[task] = keys
            self._busy |= keys
            task.add_done_callback(self._finished)

    def _next_batch(self) -> tuple[list[M], set[Hashable]]:
        if self._key is None:
            taken = self._waiting[: self._batch_size]
            del self._waiting[: self._batch_size]
            return taken, set()
        batch: list[M] = []
        keys: set[Hashable] = set()
        held: list[M] = []
        for index, message in enumerate(self._waiting):
            if len(batch) == self._batch_size:
                held.extend(self._waiting[index:])
                break
            key = self._key(message)
            if key is not None and key in self._busy:
                held.append(message)
                continue
            batch.append(message)
            if key is not None:
                keys.add(key)
        self._waiting = held
        return batch, keys

    async def _run(self, batch: list[M]) -> None:
        try:
            await self._handle(batch)
        except Exception:
            # A bug must not stop the consumer; unsettled, the messages come again after the ack wait.
            log.exception("handling a batch of %d messages failed", len(batch))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._busy -= self._running.pop(task)
        self._start_batches()
