"""Data the state machine works on: the job as the scheduler sees it, its inputs, policy and decisions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contracts.base import Message
from contracts.commands import DEFAULT_MAX_PREEMPTIONS, CancelJob, DatasetRef, SubmitJob
from contracts.events import JobEvent
from contracts.jobs import JobSpec, JobState
from contracts.reports import ArtifactReport, DoneReport, HeartbeatReport, LogReport, ProgressReport


class Tick(Message):
    """The clock, as an input: `now` is the only time the state machine sees besides the inputs' own."""

    job_id: str
    now: datetime


ReportInput = HeartbeatReport | ProgressReport | LogReport | ArtifactReport | DoneReport
Input = SubmitJob | CancelJob | ReportInput | Tick


@dataclass(frozen=True)
class Policy:
    """Timing policy, in seconds. Recorded with every input so that replay uses the values then in force."""

    heartbeat_timeout: float = 60.0
    backoff_base: float = 10.0
    backoff_max: float = 600.0
    # How long a queued attempt may wait for a runner when its job sets no `queue_timeout` (None: for ever).
    queue_timeout: float | None = None


@dataclass(frozen=True)
class Job:
    """The scheduler's state of one job (`None` before its submit)."""

    job_id: str
    project_id: str
    name: str | None
    state: JobState
    attempt: int
    version: int
    spec: JobSpec
    dataset: DatasetRef
    pool: str
    max_attempts: int
    trace_id: str
    heartbeat_deadline: datetime | None = None
    retry_at: datetime | None = None
    # When the job entered `state` (the time of the input that moved it there).
    state_since: datetime | None = None
    # The job's own queue timeout (seconds), and when the queued attempt fails without a runner.
    queue_timeout: float | None = None
    queue_deadline: datetime | None = None
    # Times the job was preempted (each time its attempt ran again, unchanged), and how often it may be.
    preemptions: int = 0
    max_preemptions: int = DEFAULT_MAX_PREEMPTIONS


@dataclass(frozen=True)
class Dispatch:
    """Effect: hand attempt `attempt` of the job to its pool; `run`: how often the attempt was preempted
    before (its message id and token name the run, so a run after a preemption is a new message)."""

    job_id: str
    attempt: int
    pool: str
    run: int = 0


@dataclass(frozen=True)
class Decision:
    """What `decide` made of one input. A rejected input leaves `state` as it was: no events, no effects."""

    state: Job | None
    events: tuple[JobEvent, ...] = ()
    effects: tuple[Dispatch, ...] = ()
    rejected_reason: str | None = None

    @property
    def applied(self) -> bool:
        return self.rejected_reason is None
