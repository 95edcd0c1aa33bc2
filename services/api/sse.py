"""Server-Sent Events streams of job events: history first, then the live feed, deduplicated by stream
sequence (the SSE `id:`), so `Last-Event-ID: N` resumes with exactly the events after N.

A terminal event is held until the read model has applied it (`hold`), so a client that reads the job
right after seeing it finish finds it finished.

A job's stream asked for with `?pending=true` also says why the job waits (`PendingWatch`): a `job.pending`
event once the history is sent, and whenever the reason changes while it waits. It is no stored event and
has no `id:`, so an EventSource's last event id stays that of the last stored event, and `Last-Event-ID`
still resumes with exactly the stored events after it (then the reason as it is by then).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing
from datetime import UTC, datetime

from contracts import subjects
from contracts.jobs import JobState
from services.api.feed import EventFeed, Listener, Overflow, StreamEvent
from services.api.pending import Sample

# Tells EventSource clients how soon to reconnect (ms); sent once the client is registered for live events.
PREAMBLE = b"retry: 2000\n\n"
KEEPALIVE = b": keep-alive\n\n"

Hold = Callable[[str, int], Awaitable[object]]
# How often a waiting job's reason is looked at again (other jobs end, runners come and go: none of that is
# an event of this job).
PENDING_RECHECK_SECONDS = 2.0
WAITING_STATES = frozenset({JobState.PENDING.value, JobState.QUEUED.value})


class PendingWatch:
    """`job.pending` frames for one job's stream: the reason when first known, then each time it changes
    (`Pending.key`: what the job waits for, or another backoff), never for a mere move of the queue.

    It looks again every `every` seconds while the job waits, and at once after an event of the job in a
    waiting state or one that ends the wait, once the read model holds that event.
    """

    def __init__(
        self,
        job_id: str,
        sample: Callable[[], Awaitable[Sample | None]],
        hold: Hold,
        every: float = PENDING_RECHECK_SECONDS,
    ) -> None:
        self._job_id = job_id
        self._sample = sample
        self._hold = hold
        self._every = every
        self._key: object = None
        self._waiting = True  # until a sample says otherwise
        self._due = float("-inf")
        self._hold_version = 0

    def due_in(self, now: float) -> float:
        return max(0.0, self._due - now) if self._waiting else float("inf")

    def notice(self, items: Iterable[StreamEvent]) -> None:
        """The job's events just sent: one in a waiting state, or any while it waited, means look again."""
        for item in items:
            if self._waiting or item.event.state.value in WAITING_STATES:
                self._waiting = True
                self._due = float("-inf")
                self._hold_version = max(self._hold_version, item.event.version)

    async def frame(self, now: float) -> bytes | None:
        """The `job.pending` frame if the reason changed since the last one; None otherwise, and when it
        cannot be told now (it is looked at again later)."""
        self._due = now + self._every
        if self._hold_version:
            await self._hold(self._job_id, self._hold_version)
            self._hold_version = 0
        sample = await self._sample()
        if sample is None:
            return None
        self._waiting = sample.state in WAITING_STATES
        reason = sample.pending
        if reason is None:
            self._key = None
            return None
        if reason.key == self._key:
            return None
        self._key = reason.key
        data = {
            "job_id": self._job_id,
            "type": "job.pending",
            "state": sample.state,
            "attempt": sample.attempt,
            "queue_position": reason.position,
            "pending_reason": reason.reason,
            "time": datetime.now(UTC).isoformat(),
        }
        return f"event: job.pending\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class _Cursor:
    """The events a client has not seen yet, written as few chunks as possible."""

    def __init__(self, after: int, hold: Hold, end_at_terminal: bool) -> None:
        self.last = after
        self.ended = False
        self._hold = hold
        self._end_at_terminal = end_at_terminal

    async def frames(self, items: Iterable[StreamEvent]) -> AsyncIterator[bytes]:
        chunk: list[bytes] = []
        for item in items:
            if item.seq <= self.last:
                continue
            self.last = item.seq
            if item.event.type.terminal:
                if chunk:
                    yield b"".join(chunk)
                    chunk = []
                await self._hold(item.event.job_id, item.event.version)
                yield item.frame
                if self._end_at_terminal:
                    self.ended = True
                    return
            else:
                chunk.append(item.frame)
        if chunk:
            yield b"".join(chunk)


async def _live(
    listener: Listener, cursor: _Cursor, keepalive: float, watch: PendingWatch | None = None
) -> AsyncIterator[bytes]:
    """Live events for the client until the cursor ends (a job stream's terminal event) or the client falls
    too far behind (it then reconnects with Last-Event-ID); a keep-alive comment when nothing was written for
    `keepalive` seconds; with `watch`, the job's `job.pending` frames."""
    clock = asyncio.get_running_loop().time
    written = clock()
    while not cursor.ended:
        wait = keepalive - (clock() - written)
        if watch is not None:
            wait = min(wait, watch.due_in(clock()))
        try:
            batch = await listener.get(max(wait, 0.0))
        except Overflow:
            return
        if batch:
            async for frame in cursor.frames(batch):
                yield frame
            written = clock()
            if cursor.ended:
                return
            if watch is not None:
                watch.notice(batch)
        if watch is not None and watch.due_in(clock()) == 0:
            if pending := await watch.frame(clock()):
                yield pending
                written = clock()
        if clock() - written >= keepalive:
            yield KEEPALIVE
            written = clock()


async def job_events(
    feed: EventFeed,
    job_id: str,
    after: int,
    finished: bool,
    keepalive: float,
    hold: Hold,
    watch: PendingWatch | None = None,
) -> AsyncIterator[bytes]:
    """Events of one job after sequence `after`; ends after the terminal event.

    `finished`: the read model already holds the job as terminal, so its terminal event is stored and
    history reaches it (or the client has seen it already). `watch`: also say why the job waits.
    """
    with feed.listen(job_id=job_id) as listener:
        yield PREAMBLE  # after registering: a client that has read it misses no live event
        cursor = _Cursor(after, hold, end_at_terminal=True)
        async with aclosing(feed.history(subjects.job_events_filter(job_id), after)) as history:
            async for item in history:
                async for frame in cursor.frames((item,)):
                    yield frame
                if cursor.ended:
                    return
                if watch is not None:
                    watch.notice((item,))
        if finished:
            return
        async for frame in _live(listener, cursor, keepalive, watch):
            yield frame


async def project_events(
    feed: EventFeed, project_id: str, after: int | None, keepalive: float, hold: Hold
) -> AsyncIterator[bytes]:
    """Every job event of one project, live; with `after`, first the stored ones after that sequence."""
    with feed.listen(project_id=project_id) as listener:
        yield PREAMBLE
        cursor = _Cursor(after or 0, hold, end_at_terminal=False)
        if after is not None:
            async with aclosing(feed.history(subjects.EVENTS_ALL, after)) as history:
                async for item in history:
                    if item.event.project_id == project_id:
                        async for frame in cursor.frames((item,)):
                            yield frame
        async for frame in _live(listener, cursor, keepalive):
            yield frame
