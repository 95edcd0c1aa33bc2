"""A job's metrics history (`GET /v1/jobs/{id}/metrics`): every metric of every epoch, as series ready to
plot, read from the job's `job.progress` events in the stream (the history every other view is built
from)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing

from contracts import subjects
from contracts.events import JobEvent
from services.api.feed import EventFeed
from services.api.schemas import AttemptMark, MetricPoint, MetricsHistory


def history_of(progress: Iterable[JobEvent]) -> MetricsHistory:
    """Series from progress events in stream order. An epoch appears once, as the last attempt to report it
    had it (a retry trains it again; a resumed attempt goes on after its checkpoint's epoch); each attempt
    is marked where its first report came, with the epoch it resumed from."""
    latest: dict[int, JobEvent] = {}
    attempts: dict[int, AttemptMark] = {}
    epochs = None
    for event in progress:
        epoch = int(event.payload.get("epoch", 0))
        latest[epoch] = event
        epochs = event.payload.get("epochs", epochs)
        if event.attempt not in attempts:
            resumed = event.payload.get("resumed_from_epoch")
            attempts[event.attempt] = AttemptMark(
                attempt=event.attempt, first_epoch=epoch, resumed_from_epoch=resumed
            )
    series: dict[str, list[MetricPoint]] = {}
    for epoch in sorted(latest):
        event = latest[epoch]
        for name, value in event.payload.get("metrics", {}).items():
            point = MetricPoint(epoch=epoch, value=value, attempt=event.attempt, time=event.time)
            series.setdefault(name, []).append(point)
    return MetricsHistory(
        epochs=epochs, series=series, attempts=sorted(attempts.values(), key=lambda a: a.attempt)
    )


async def metrics_history(feed: EventFeed, job_id: str) -> MetricsHistory:
    return history_of([event async for event in _progress_events(feed, job_id)])


async def _progress_events(feed: EventFeed, job_id: str) -> AsyncIterator[JobEvent]:
    async with aclosing(feed.history(subjects.event_subject(job_id, "job.progress"), 0)) as history:
        async for item in history:
            yield item.event
