"""Server-Sent Events: `/v1/jobs/{id}/events` (one job, ends after its terminal event) and `/v1/events`
(every job of the caller's project). Resume with the `Last-Event-ID` header or `?last_event_id=`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from contracts.jobs import JobState
from services.api import pending as pending_reasons
from services.api import service, sse
from services.api.deps import (
    CurrentProject,
    EngineDep,
    FeedDep,
    PoolsDep,
    ReadModelDep,
    SessionDep,
    SettingsDep,
)
from services.api.errors import InvalidField
from services.api.routes.params import MAX_SEQUENCE, JobId, LastEventIdQuery
from services.api.schemas import ErrorOut

router = APIRouter(tags=["events"])
SSE_RESPONSE = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "id: stream sequence, event: type, data: JSON",
    },
    401: {"model": ErrorOut},
    404: {"model": ErrorOut},
}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

LastEventIdHeader = Annotated[str | None, Header(alias="Last-Event-ID")]
PendingQuery = Annotated[
    bool,
    Query(
        description="Also send `job.pending` events (they have no `id:`) while the job waits: its "
        "`queue_position` and `pending_reason`, once the history is sent and whenever the reason changes."
    ),
]


def _resume_point(header: str | None, query: int | None) -> int | None:
    if header is not None and header.strip():
        value = header.strip()
        # ASCII digits only: str.isdigit() also takes '²' and other digits int() refuses or reads.
        if not (value.isascii() and value.isdigit() and len(value) <= 19 and int(value) <= MAX_SEQUENCE):
            raise InvalidField(("header", "Last-Event-ID"), "must be a stream sequence (a whole number)")
        return int(value)
    return query


@router.get("/v1/jobs/{job_id}/events", response_class=StreamingResponse, responses=SSE_RESPONSE)
async def job_events(
    job_id: JobId,
    project: CurrentProject,
    session: SessionDep,
    feed: FeedDep,
    read_model: ReadModelDep,
    settings: SettingsDep,
    engine: EngineDep,
    pools: PoolsDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
    pending: PendingQuery = False,
) -> StreamingResponse:
    """The job's events from the start (or after `Last-Event-ID`), then live; ends after the terminal one.
    With `pending=true`, also why it waits while it does (`job.pending`)."""
    job = await service.get_job(session, project.id, job_id)
    after = _resume_point(last_event_id_header, last_event_id) or 0
    watch = None
    if pending:

        async def sample() -> pending_reasons.Sample | None:
            return await pending_reasons.sample(engine, pools, job_id, datetime.now(UTC))

        watch = sse.PendingWatch(job_id, sample, read_model.caught_up)
    stream = sse.job_events(
        feed,
        job.id,
        after,
        JobState(job.state).terminal,
        settings.sse_keepalive_seconds,
        read_model.caught_up,
        watch,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/v1/events", response_class=StreamingResponse, responses=SSE_RESPONSE)
async def project_events(
    project: CurrentProject,
    feed: FeedDep,
    read_model: ReadModelDep,
    settings: SettingsDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> StreamingResponse:
    """Every job event of the caller's project from now on; with `Last-Event-ID`, first those after it."""
    after = _resume_point(last_event_id_header, last_event_id)
    keepalive = settings.sse_keepalive_seconds
    stream = sse.project_events(feed, project.id, after, keepalive, read_model.caught_up)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
