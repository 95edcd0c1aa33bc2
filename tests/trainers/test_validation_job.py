"""`python -m trainers.validation` as the runner starts it (no arguments, the trainer environment): it fetches
the job's dataset, validates it within the spec's limits, uploads report.json and reports the verdict as its
done metrics, against a real events service and storage."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

from contracts.reports import ArtifactReport, DoneReport
from contracts.validation import DatasetValidationSpec, ValidationLimits, ValidationMetrics
from services.common import storage
from services.events.testing import stored_reports
from tests.trainers.validation_archives import imagefolder_members, write_zip
from trainers.env import TrainerEnv
from trainers.runner import trainer_environ
from trainers.validation.job import MAX_METRICS_BYTES, verdict_metrics
from trainers.validation.report import DatasetStatus, DatasetSummary, ImageFolderSplit, ValidationReport


def stored(platform, archive: Path) -> str:
    """Put an archive into the platform's storage as a dataset; its key."""
    key = storage.dataset_key(uuid.uuid4().hex, archive.name)
    (platform.settings.storage_dir / key).parent.mkdir(parents=True)
    shutil.copy(archive, platform.settings.storage_dir / key)
    return key


async def validate(platform, js, key: str, limits: ValidationLimits | None = None) -> tuple[int, list]:
    """Run the validation trainer on the dataset at `key`; its exit status and reports."""
    job_id = uuid.uuid4().hex
    env = TrainerEnv(
        job_id=job_id,
        attempt=1,
        callback_url=f"{platform.events_url}/v1/callbacks",
        callback_token=platform.token(job_id),
        spec=DatasetValidationSpec(framework="validation", limits=limits or ValidationLimits()),
        dataset_url=platform.signer.sign(key, "GET", 600),
        dataset_format="imagefolder",
        heartbeat_interval=0.5,
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trainers.validation", env=trainer_environ(env, dict(os.environ))
    )
    returncode = await asyncio.wait_for(child.wait(), 60)
    return returncode, [report for _, report in await stored_reports(js, job_id)]


async def test_a_valid_dataset_is_ready_with_its_counts_and_report(platform, js):
    returncode, reports = await validate(platform, js, platform.dataset_key)
    assert returncode == 0
    [artifact] = [r for r in reports if isinstance(r, ArtifactReport)]
    [done] = [r for r in reports if isinstance(r, DoneReport)]
    assert (artifact.name, done.status) == ("report.json", "succeeded")
    verdict = ValidationMetrics.model_validate(done.metrics)
    assert (verdict.status, verdict.problem_count, verdict.summary_truncated) == ("READY", 0, False)
    assert verdict.content_hash is not None
    assert verdict.content_hash.startswith("sha256:")
    assert verdict.summary is not None
    assert verdict.summary["splits"]["train"]["images"] == 36  # 3 classes x 12
    report = json.loads(platform.artifact_path(artifact.job_id, "report.json").read_text())
    assert report["status"] == "READY"
    assert report["content_hash"] == verdict.content_hash


async def test_a_hostile_dataset_is_rejected_and_the_limits_of_the_spec_apply(platform, js, tmp_path):
    members = {**imagefolder_members(tmp_path), "../evil.png": b"x"}
    _, reports = await validate(platform, js, stored(platform, write_zip(tmp_path / "evil.zip", members)))
    [done] = [r for r in reports if isinstance(r, DoneReport)]
    assert (done.status, done.metrics["status"]) == ("succeeded", "REJECTED")
    assert done.metrics["problems"][0]["file"] == "../evil.png"
    assert "path traversal" in done.metrics["problems"][0]["message"]

    _, reports = await validate(platform, js, platform.dataset_key, ValidationLimits(max_files=5))
    [done] = [r for r in reports if isinstance(r, DoneReport)]
    assert done.metrics["status"] == "REJECTED"
    assert "too many entries" in done.metrics["problems"][0]["message"]


async def test_a_dataset_that_cannot_be_fetched_fails_the_attempt(platform, js):
    returncode, reports = await validate(platform, js, storage.dataset_key(uuid.uuid4().hex, "gone.zip"))
    assert returncode == 1
    [done] = [r for r in reports if isinstance(r, DoneReport)]
    assert done.status == "failed"
    assert "404" in (done.reason or "")


def test_a_summary_of_very_many_classes_is_cut_down_to_its_totals():
    classes = [f"class-{i:05d}-{'x' * 40}" for i in range(6000)]
    split = ImageFolderSplit(images=6000, images_per_class=dict.fromkeys(classes, 1))
    report = ValidationReport(
        status=DatasetStatus.READY,
        format="imagefolder",
        summary=DatasetSummary(classes=classes, splits={"train": split}, files=6000, total_bytes=10),
        problems=[],
        problem_count=0,
        content_hash="sha256:" + "0" * 64,
    )
    metrics = verdict_metrics(report)
    assert len(json.dumps(metrics)) < MAX_METRICS_BYTES
    assert metrics["summary_truncated"] is True
    assert metrics["summary"] == {
        "classes": 6000,
        "splits": {"train": {"images": 6000}},
        "files": 6000,
        "total_bytes": 10,
    }
    assert ValidationMetrics.model_validate(metrics).status == "READY"
