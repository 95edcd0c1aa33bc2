"""`/v1/jobs/{id}/logs`: a job's output (its trainer's stdout and stderr) as plain text."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from contracts.jobs import JobState
from services.api import logs, service
from services.api.deps import CurrentProject, FeedDep, SessionDep, SettingsDep
from services.api.routes.params import JobId
from services.api.schemas import ErrorOut

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
MAX_TAIL = 100_000
LOGS_RESPONSE = {
    200: {"content": {"text/plain": {}}, "description": "one line of output a line"},
    401: {"model": ErrorOut},
    404: {"model": ErrorOut},
}


@router.get("/{job_id}/logs", response_class=StreamingResponse, responses=LOGS_RESPONSE)
async def job_logs(
    job_id: JobId,
    project: CurrentProject,
    session: SessionDep,
    feed: FeedDep,
    settings: SettingsDep,
    tail: Annotated[int | None, Query(ge=0, le=MAX_TAIL, description="only the last N lines")] = None,
    follow: Annotated[bool, Query(description="then new lines as they come, until the job ends")] = False,
    stream: Annotated[
        Literal["stdout", "stderr", "runner"] | None, Query(description="only this stream's lines")
    ] = None,
) -> StreamingResponse:
    """The job's output, every attempt's, in order: its trainer's stdout and stderr as the runner captured
    them (progress bars as their last state, long lines cut, secrets redacted), the runner's notes on what
    it dropped (`[vtp] ...`), the trainer's own log lines (`[info] ...`), and `[vtp] attempt N` where a
    retry begins."""
    job = await service.get_job(session, project.id, job_id)
    text = logs.job_logs(
        feed,
        job.id,
        tail=tail,
        follow=follow,
        finished=JobState(job.state).terminal,
        stream=stream,
        keepalive=settings.sse_keepalive_seconds,
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(text, media_type="text/plain; charset=utf-8", headers=headers)
