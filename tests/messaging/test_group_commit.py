"""The group commit's order per key (messaging.group_commit): one key's messages are never in two batches at
once, and wait for nothing else; messages without a key wait for nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from messaging.group_commit import GroupCommit


class Batches:
    """A batch handler that holds every batch until it is released, recording what ran at once."""

    def __init__(self) -> None:
        self.started: list[list[str]] = []
        self.overlaps: list[tuple[list[str], list[str]]] = []
        self._running: list[list[str]] = []
        self.release = asyncio.Event()

    async def __call__(self, batch: Sequence[str]) -> None:
        taken = list(batch)
        self.overlaps += [(other, taken) for other in self._running]
        self._running.append(taken)
        self.started.append(taken)
        await self.release.wait()
        self._running.remove(taken)


def job_of(message: str) -> str | None:
    job, _, _ = message.partition(":")
    return job or None


async def test_a_keys_later_message_waits_for_the_batch_holding_its_earlier_one() -> None:
    handle = Batches()
    group = GroupCommit(handle, batch_size=2, parallel=4, key=job_of)
    for message in ("a:log", "a:done", "b:progress", "c:progress", "b:done"):
        group.put(message)  # a batch starts at once while one of the four is free
    await asyncio.sleep(0)
    # b and c went on beside a's batch; a's done (and b's, whose progress is running) wait.
    assert handle.started == [["a:log"], ["b:progress"], ["c:progress"]]

    handle.release.set()
    await group.drain()
    assert sorted(m for batch in handle.started[3:] for m in batch) == ["a:done", "b:done"]
    assert handle.overlaps  # batches did run at once
    for earlier, later in handle.overlaps:
        assert not {job_of(m) for m in earlier} & {job_of(m) for m in later}, (earlier, later)


async def test_messages_without_a_key_fill_parallel_batches_in_order() -> None:
    handle = Batches()
    group = GroupCommit(handle, batch_size=2, parallel=2, key=lambda message: None)
    for index in range(5):
        group.put(f":{index}")
    await asyncio.sleep(0)
    assert handle.started == [[":0"], [":1"]]
    handle.release.set()
    await group.drain()
    assert handle.started[2:] == [[":2", ":3"], [":4"]]


async def test_a_batch_that_fails_frees_its_keys() -> None:
    calls: list[list[str]] = []

    async def failing_once(batch: Sequence[str]) -> None:
        calls.append(list(batch))
        if len(calls) == 1:
            raise RuntimeError("a bug")

    group = GroupCommit(failing_once, batch_size=8, parallel=2, key=job_of)
    group.put("a:1")
    group.put("a:2")
    await group.drain()
    group.put("a:3")
    await group.drain()
    assert calls == [["a:1"], ["a:2"], ["a:3"]]
