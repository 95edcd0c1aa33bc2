"""Server-Sent Events streams of job events: history first, then the live feed, deduplicated by stream
sequence (the SSE `id:`), so `Last-Event-ID: N` resumes with exactly the events after N.

A terminal event is held until the read model has applied it (`hold`), so a client that reads the job
right after seeing it finish finds it finished.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing

from contracts import subjects
from services.api.feed import EventFeed, Listener, Overflow, StreamEvent

# Tells EventSource clients how soon to reconnect (ms); sent once the client is registered for live events.
PREAMBLE = b"retry: 2000\n\n"
KEEPALIVE = b": keep-alive\n\n"

Hold = Callable[[str, int], Awaitable[object]]


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


async def _live(listener: Listener, cursor: _Cursor, keepalive: float) -> AsyncIterator[bytes]:
    """Live events for the client until the cursor ends (a job stream's terminal event) or the client falls
    too far behind (it then reconnects with Last-Event-ID); a keep-alive comment when nothing happens."""
    while not cursor.ended:
        try:
            batch = await listener.get(keepalive)
        except Overflow:
            return
        if not batch:
            yield KEEPALIVE
            continue
        async for frame in cursor.frames(batch):
            yield frame


async def job_events(
    feed: EventFeed, job_id: str, after: int, finished: bool, keepalive: float, hold: Hold
) -> AsyncIterator[bytes]:
    """Events of one job after sequence `after`; ends after the terminal event.

    `finished`: the read model already holds the job as terminal, so its terminal event is stored and
    history reaches it (or the client has seen it already).
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
        if finished:
            return
        async for frame in _live(listener, cursor, keepalive):
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
