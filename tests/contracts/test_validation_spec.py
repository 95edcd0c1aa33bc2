"""The dataset-validation job spec: the third member of `JobSpec`, parsed like the others, fitting every
dataset format, and the verdict its trainer reports."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.commands import SubmitJob
from contracts.datasets import DATASET_FORMATS
from contracts.jobs import dataset_mismatch, parse_job_spec
from contracts.validation import DatasetValidationSpec, ValidationMetrics


def test_a_validation_spec_parses_to_its_model_and_fits_every_format():
    spec = parse_job_spec({"framework": "validation", "limits": {"max_total_bytes": 1024}})
    assert isinstance(spec, DatasetValidationSpec)
    assert (spec.task, spec.model, spec.limits.max_total_bytes, spec.limits.max_files) == (
        "validate",
        "dataset",
        1024,
        None,
    )
    assert all(dataset_mismatch(spec, dataset_format) is None for dataset_format in DATASET_FORMATS)
    with pytest.raises(ValidationError) as caught:
        parse_job_spec({"framework": "validation", "limits": {"max_ratio": 0.5}, "epochs": 3})
    assert sorted(e["loc"] for e in caught.value.errors()) == [("epochs",), ("limits", "max_ratio")]


def test_a_submit_carries_the_spec_and_the_dataset_version():
    command = SubmitJob.model_validate(
        {
            "job_id": "j1",
            "project_id": "p1",
            "spec": {"framework": "validation"},
            "dataset": {
                "id": "d1",
                "format": "yolo-detect",
                "storage_key": "datasets/d1/x.zip",
                "version": 2,
            },
            "pool": "cpu",
            "max_attempts": 3,
            "trace_id": "t" * 32,
            "submitted_at": "2026-01-01T00:00:00Z",
        }
    )
    assert isinstance(command.spec, DatasetValidationSpec)
    assert command.dataset.version == 2
    assert SubmitJob.model_validate_json(command.model_dump_json()) == command


def test_the_verdict_needs_a_status():
    assert ValidationMetrics.model_validate({"status": "REJECTED", "problem_count": 2}).problems == []
    with pytest.raises(ValidationError):
        ValidationMetrics.model_validate({"epochs": 3, "val_accuracy": 0.9})
