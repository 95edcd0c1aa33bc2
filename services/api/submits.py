"""Group commit for submits: concurrent `POST /v1/jobs` share one transaction.

A submit inserts its read-model row and publishes `SubmitJob` (awaiting the PubAck) before its transaction
commits, so an accepted job is both durable on the bus and visible at its `Location`. Done one submit at a
time, begin + insert + commit cost the api more CPU than everything else a submit does. Here the submits
waiting at the same moment go together: one multi-row INSERT, their publishes in flight together, one commit.
A submit that arrives alone is written at once, alone: batching adds no latency to a quiet platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.commands import SubmitJob
from services.api import repository
from services.api.errors import Unavailable
from services.api.messaging import CommandPublisher

log = logging.getLogger(__name__)

# Transactions in flight at once: while some wait on Postgres or PubAcks, the next batch fills up.
WRITERS = 4
MAX_BATCH = 200


@dataclass(frozen=True)
class PendingSubmit:
    row: dict[str, Any]
    command: SubmitJob
    # True: inserted and published; False: the project already has a job with this idempotency key.
    outcome: asyncio.Future[bool]


class SubmitWriter:
    """Writes submits in batches: `await writer.submit(row, command)` returns once the row is committed
    and the command stored by JetStream, or raises (nothing of that submit is kept then)."""

    def __init__(self, engine: AsyncEngine, publisher: CommandPublisher) -> None:
        self._engine = engine
        self._publisher = publisher
        self._queue: asyncio.Queue[PendingSubmit] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_loop()) for _ in range(WRITERS)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.outcome.done():
                pending.outcome.set_exception(Unavailable("the api is shutting down; retry"))

    async def submit(self, row: dict[str, Any], command: SubmitJob) -> bool:
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(PendingSubmit(row, command, outcome))
        return await outcome

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # A request whose client went away before its turn is dropped: nothing of it is written.
            batch = [pending for pending in batch if not pending.outcome.done()]
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[PendingSubmit]) -> None:
        try:
            async with self._engine.begin() as conn:  # commits when the block ends
                # The command is stored by JetStream before this commits; should Postgres lose the
                # commit in a crash, the read model rebuilds the row, key included, from `job.submitted`
                # (as when the api dies between the PubAck and the commit). So the answer need not wait
                # for the disk, whose flushes stall now and then for a hundred milliseconds and more.
                await repository.skip_waiting_for_disk(conn)
                inserted = await repository.insert_jobs(conn, [pending.row for pending in batch])
                fresh = _first_of_each(batch, inserted)
                refusals = await self._publisher.submit_many([pending.command for pending in fresh])
                # A job whose command the bus refused must not exist: its request answers 503.
                refused = [p.row["id"] for p, refusal in zip(fresh, refusals, strict=True) if refusal]
                if refused:
                    await repository.delete_jobs(conn, refused)
        except Exception as exc:
            log.warning("a batch of %d submits failed: %s", len(batch), exc)
            for pending in batch:
                _settle(pending.outcome, exc)
            return
        outcomes = {id(p): refusal or True for p, refusal in zip(fresh, refusals, strict=True)}
        for pending in batch:
            _settle(pending.outcome, outcomes.get(id(pending), False))


def _first_of_each(batch: list[PendingSubmit], inserted: set[str]) -> list[PendingSubmit]:
    """The submits whose rows were inserted. Retries with one idempotency key derive one job id, so
    several in a batch share an id: the first is the one inserted, the others find its job after."""
    fresh: list[PendingSubmit] = []
    for pending in batch:
        if pending.row["id"] in inserted:
            inserted.discard(pending.row["id"])
            fresh.append(pending)
    return fresh


def _settle(outcome: asyncio.Future[bool], result: bool | BaseException) -> None:
    if outcome.done():  # the client went away meanwhile
        return
    if isinstance(result, BaseException):
        outcome.set_exception(result)
    else:
        outcome.set_result(result)
