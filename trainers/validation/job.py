"""Dataset validation as a platform job: `python -m trainers.validation` started by the runner (no arguments,
the trainer environment set; see `contracts.validation`).

Fetch the job's dataset archive, validate it within the spec's limits, upload the report as `report.json`,
and report `done(succeeded)` with the verdict as metrics: READY and REJECTED are both results. Only a
validation that could not run (download failed, a crash) reports `done(failed)`, so the scheduler retries it.
Exit 0 when succeeded or cancelled, 1 on failure."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from contracts.datasets import DATASET_FORMATS
from contracts.validation import REPORT_ARTIFACT, DatasetValidationSpec, ValidationLimits
from trainers.callbacks import CallbackClient
from trainers.datasets import download
from trainers.env import TrainerEnv
from trainers.heartbeat import Heartbeat
from trainers.outcome import Result, run_trainer
from trainers.validation.limits import DEFAULT_LIMITS, Limits
from trainers.validation.report import ValidationReport
from trainers.validation.validate import validate_archive

log = logging.getLogger("trainers.validation")

# The verdict travels in the done report, a NATS message (1 MiB at most); a summary of very many classes is
# cut down to its totals rather than let the message fail. The whole report is `report.json`.
MAX_METRICS_BYTES = 256 * 1024


def limits_of(spec: ValidationLimits) -> Limits:
    given = spec.model_dump(exclude_none=True)
    return Limits(**{**vars(DEFAULT_LIMITS), **given})


def verdict_metrics(report: ValidationReport) -> dict[str, Any]:
    """The report as done metrics (`contracts.validation.ValidationMetrics`), within `MAX_METRICS_BYTES`."""
    metrics = report.model_dump(mode="json", exclude={"format"})
    summary = metrics.get("summary")
    if summary is not None and len(json.dumps(metrics)) > MAX_METRICS_BYTES:
        metrics["summary"] = {
            "classes": len(summary["classes"]),
            "splits": {name: {"images": split["images"]} for name, split in summary["splits"].items()},
            "files": summary["files"],
            "total_bytes": summary["total_bytes"],
        }
        metrics["summary_truncated"] = True
    return metrics


def run(
    env: TrainerEnv[DatasetValidationSpec], client: CallbackClient, heartbeat: Heartbeat, work: Path
) -> Result:
    if env.dataset_format not in DATASET_FORMATS:
        raise ValueError(f"unknown dataset format {env.dataset_format!r}")
    archive = download(env.dataset_url, work / "dataset.archive")
    if heartbeat.stop_requested.is_set():
        return Result("cancelled", heartbeat.stop_reason)
    report = validate_archive(
        archive,
        env.dataset_format,  # type: ignore[arg-type]  # checked above
        limits=limits_of(env.spec.limits),
        workdir=work / "extracted",
    )
    log.info("dataset %s: %d problems", report.status.value, report.problem_count)
    report_path = work / REPORT_ARTIFACT
    report_path.write_text(report.model_dump_json(indent=2))
    client.upload_artifact(report_path, REPORT_ARTIFACT)
    return Result("succeeded", metrics=verdict_metrics(report))


def main() -> int:
    return run_trainer("validation", DatasetValidationSpec, run)
