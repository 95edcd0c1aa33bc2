"""A job's output as plain text (`GET /v1/jobs/{id}/logs`): its `job.log` events, read from VTP_EVENTS.

Where a job's logs are kept, and why there: nowhere but the job's history. The runner sends the trainer's
stdout and stderr in batches (trainers/output.py), each batch becomes one report and one `job.log` event
(`payload.lines`, each line with its stream), like every other thing that happens to a job. So logs need
no store, table or consumer of their own, are replayable and kept as long as the job's history, follow
the job's retention, and reach SSE clients live with its other events. Reading them is cheap: a job's
log events have a subject of their own (`vtp.v1.job.<id>.log`), and JetStream finds a subject's messages
by its index, without reading other jobs' events; an attempt's output is capped (20 000 lines, 4 MiB) and
comes in batches of up to 500 lines, so a job has at most a few dozen log events per attempt. `?tail=N`
reads them all once, keeping only the last N lines. The price is paid on the write side: each batch is a
transition of the scheduler (at most one a second per running attempt, which is why output is batched).

`?follow=true` registers with the live feed before reading history (services/api/feed.py, as the SSE
streams do), so no line falls between the two, and ends with the job's terminal event. It reads the job's
every event then (not only its log events), to see a terminal event stored before it started.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import aclosing

from contracts import subjects
from contracts.events import JobEvent
from contracts.jobs import EventType
from services.api.feed import EventFeed, Overflow, StreamEvent

NOTE = "[vtp]"


class Rendering:
    """Job events to lines of text: each line of captured output as it is (the runner's notes marked
    `[vtp]`), a log line of the trainer's own with its level, and a mark where a new attempt begins.
    With `stream`, only that stream's lines."""

    def __init__(self, stream: str | None = None) -> None:
        self.stream = stream
        self._attempt: int | None = None

    def lines(self, event: JobEvent) -> list[str]:
        if event.type != EventType.LOG:
            return []
        out: list[str] = []
        if self._attempt is not None and event.attempt != self._attempt and self.stream is None:
            out.append(f"{NOTE} attempt {event.attempt}")
        self._attempt = event.attempt
        payload = event.payload
        captured = payload.get("lines")
        if isinstance(captured, list):
            for line in captured:
                if not isinstance(line, dict) or (self.stream and line.get("stream") != self.stream):
                    continue
                text = str(line.get("text", ""))
                out.append(f"{NOTE} {text}" if line.get("stream") == "runner" else text)
        elif self.stream is None:
            level = payload.get("level", "info")
            out += [f"[{level}] {text}" for text in str(payload.get("message", "")).splitlines() or [""]]
        return out


def _text(lines: Iterable[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


async def job_logs(
    feed: EventFeed,
    job_id: str,
    *,
    tail: int | None = None,
    follow: bool = False,
    finished: bool = False,
    stream: str | None = None,
    keepalive: float = 15.0,
) -> AsyncIterator[bytes]:
    """The job's output; with `tail`, its last lines only; with `follow` (and the job not `finished`),
    then its new lines as they come, until the job ends."""
    rendering = Rendering(stream)
    if not follow or finished:
        history = feed.history(subjects.event_subject(job_id, EventType.LOG.value), 0)
        async for chunk in _stored(history, lambda item: rendering.lines(item.event), tail):
            yield chunk
        return
    with feed.listen(job_id=job_id) as listener:
        cursor = _Cursor(rendering)
        history = feed.history(subjects.job_events_filter(job_id), 0)
        async for chunk in _stored(history, lambda item: cursor.lines((item,)), tail, cursor):
            yield chunk
        while not cursor.ended:
            try:
                batch = await listener.get(keepalive)
            except Overflow:
                return  # too far behind the live feed: the client asks again (with a tail)
            if chunk := _text(cursor.lines(batch)):
                yield chunk


class _Cursor:
    """Where history and the live feed meet: events after the last sequence seen, up to a terminal one."""

    def __init__(self, rendering: Rendering) -> None:
        self.rendering = rendering
        self.last = 0
        self.ended = False

    def lines(self, items: Iterable[StreamEvent]) -> list[str]:
        out: list[str] = []
        for item in items:
            if self.ended or item.seq <= self.last:
                continue
            self.last = item.seq
            out += self.rendering.lines(item.event)
            self.ended = item.event.type.terminal
        return out


async def _stored(
    history: AsyncIterator[StreamEvent],
    lines_of: Callable[[StreamEvent], list[str]],
    tail: int | None,
    cursor: _Cursor | None = None,
) -> AsyncIterator[bytes]:
    """Stored events as text: as they are read, or (with `tail`) the last lines once all are read; up to
    the `cursor`'s end, if one is given."""
    kept: deque[str] | None = None if tail is None else deque(maxlen=tail)
    async with aclosing(history):
        async for item in history:
            lines = lines_of(item)
            if kept is not None:
                kept.extend(lines)
            elif lines:
                yield _text(lines)
            if cursor is not None and cursor.ended:
                break
    if kept:
        yield _text(kept)
