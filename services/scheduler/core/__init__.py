"""The scheduler's functional core: the pure job state machine and its data."""

from services.scheduler.core.backoff import backoff_seconds
from services.scheduler.core.machine import decide
from services.scheduler.core.model import Decision, Dispatch, Input, Job, Policy, ReportInput, Tick

__all__ = [
    "Decision",
    "Dispatch",
    "Input",
    "Job",
    "Policy",
    "ReportInput",
    "Tick",
    "backoff_seconds",
    "decide",
]
