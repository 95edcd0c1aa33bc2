"""Job events for SSE clients: one shared live subscription per process, fanned out in memory, plus
history replayed from the stream for a client that starts late or resumes.

A client registers with the live feed first, then reads history; the SSE layer drops what it has already
sent by stream sequence, so history and live meet with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from contracts import subjects
from contracts.events import JobEvent
from telemetry import metrics

log = logging.getLogger(__name__)

# A client whose queue grows past this is too slow: its stream ends and it resumes with Last-Event-ID.
MAX_BACKLOG = 10_000
HISTORY_IDLE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class StreamEvent:
    seq: int
    event: JobEvent
    frame: bytes  # the SSE frame, rendered once and shared by every client

    @classmethod
    def of(cls, message: Msg) -> StreamEvent | None:
        try:
            event = JobEvent.model_validate_json(message.data)
        except ValidationError:
            log.warning("feed: ignoring a message that is not a JobEvent on %s", message.subject)
            return None
        seq = message.metadata.sequence.stream
        frame = f"id: {seq}\nevent: {event.type.value}\ndata: {event.model_dump_json()}\n\n".encode()
        return cls(seq=seq, event=event, frame=frame)


class Listener:
    """One client's view of the live feed."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[StreamEvent] = asyncio.Queue()
        self.overflowed = False

    def push(self, item: StreamEvent) -> None:
        if self.overflowed:
            return
        if self._queue.qsize() >= MAX_BACKLOG:
            self.overflowed = True
            return
        self._queue.put_nowait(item)

    async def get(self, wait: float) -> list[StreamEvent]:
        """Every queued live event (waiting up to `wait` seconds for one; [] if none came).

        Taking all at once lets a busy stream write one chunk per wake-up instead of one per event.
        Raises `Overflow` once the backlog overflowed and is drained.
        """
        if self._queue.empty():
            if self.overflowed:
                raise Overflow
            try:
                first = await asyncio.wait_for(self._queue.get(), wait)
            except TimeoutError:
                return []
            items = [first]
        else:
            items = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items


class Overflow(Exception):
    """The client fell too far behind the live feed."""


class EventFeed:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._by_job: dict[str, set[Listener]] = {}
        self._by_project: dict[str, set[Listener]] = {}
        self._subscription: JetStreamContext.PushSubscription | None = None

    async def start(self) -> None:
        # Ordered consumer: gap-free and in order, re-created by the client on a sequence gap.
        self._subscription = await self._js.subscribe(
            subjects.EVENTS_ALL,
            stream=subjects.EVENTS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            cb=self._on_message,
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()

    async def _on_message(self, message: Msg) -> None:
        if not self._by_job and not self._by_project:
            return  # nobody is listening: skip parsing and rendering
        item = StreamEvent.of(message)
        if item is None:
            return
        for listener in self._by_job.get(item.event.job_id, ()):
            listener.push(item)
        for listener in self._by_project.get(item.event.project_id, ()):
            listener.push(item)

    @contextlib.contextmanager
    def listen(self, *, job_id: str | None = None, project_id: str | None = None) -> Iterator[Listener]:
        """Receive live events of one job or of one project while the block runs."""
        index, key = (self._by_job, job_id) if job_id is not None else (self._by_project, project_id)
        assert key is not None
        listener = Listener()
        index.setdefault(key, set()).add(listener)
        metrics.SSE_CLIENTS.inc()
        try:
            yield listener
        finally:
            metrics.SSE_CLIENTS.dec()
            listeners = index.get(key)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del index[key]

    async def history(self, filter_subject: str, after: int) -> AsyncIterator[StreamEvent]:
        """Stored events on `filter_subject` with sequence > `after`, up to what the stream held on entry.

        Anything stored later reaches a listener registered before this call through the live feed.
        """
        state = (await self._js.stream_info(subjects.EVENTS_STREAM)).state
        last = state.last_seq
        if last <= after:
            return
        start = max(after + 1, state.first_seq)
        subscription = await self._js.subscribe(
            filter_subject,
            stream=subjects.EVENTS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            config=ConsumerConfig(opt_start_seq=start),
        )
        try:
            info = await subscription.consumer_info()
            if info.num_pending == 0 and (info.delivered is None or not info.delivered.consumer_seq):
                return
            while True:
                try:
                    message = await subscription.next_msg(timeout=HISTORY_IDLE_TIMEOUT)
                except nats.errors.TimeoutError:
                    log.warning("feed: history of %s stalled after sequence %s", filter_subject, after)
                    return
                item = StreamEvent.of(message)
                seq = message.metadata.sequence.stream
                if item is not None:
                    yield item
                if seq >= last or message.metadata.num_pending == 0:
                    return
        finally:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
