"""What the trainer tests check of a job that asked for exports: its reports, and loading what it wrote."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from contracts.reports import ArtifactReport, DoneReport, LogReport
from services.events.testing import stored_reports


async def assert_exported(js, job_id: str, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    """The job succeeded and uploaded `names` last, one per format it asked for, each said in a `job.log`."""
    reports = [report for _, report in await stored_reports(js, job_id)]
    artifacts = [r.name for r in reports if isinstance(r, ArtifactReport)]
    assert artifacts[-len(names) :] == names
    logs = [r.message.split(" (")[0] for r in reports if isinstance(r, LogReport) and r.lines is None]
    assert logs == [f"exported {Path(name).suffix.removeprefix('.')}: {name}" for name in names]
    [done] = [r for r in reports if isinstance(r, DoneReport)]
    assert done.status == "succeeded"
    assert "export_failed" not in done.metrics


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch deprecates TorchScript, yet loads it
        return torch.jit.load(str(path))
