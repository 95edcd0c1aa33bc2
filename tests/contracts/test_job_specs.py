"""The job spec of each framework: the timm spec as v1 published it, the Ultralytics spec and its
hyperparameter allow-list, parsing either one, and which dataset formats fit which spec."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts import ultralytics_hyperparameters
from contracts.commands import SubmitJob
from contracts.jobs import TimmSpec, dataset_mismatch, parse_job_spec
from contracts.ultralytics import UltralyticsSpec, task_of_model


def spec(**changes: object) -> UltralyticsSpec:
    body = {"framework": "ultralytics", "task": "detect", "model": "yolo11n.yaml"} | changes
    return UltralyticsSpec.model_validate(body)


def refusal(**changes: object) -> list[tuple[str, str]]:
    """(location, message) of every error, locations dotted."""
    with pytest.raises(ValidationError) as caught:
        spec(**changes)
    return [(".".join(str(part) for part in e["loc"]), e["msg"]) for e in caught.value.errors()]


def test_a_timm_spec_serializes_exactly_as_v1_did():
    timm = {
        "framework": "timm",
        "task": "classify",
        "model": "resnet18",
        "hyperparameters": {"epochs": 2, "batch_size": 8, "image_size": 64, "learning_rate": 0.001},
    }
    parsed = parse_job_spec(timm)
    assert isinstance(parsed, TimmSpec)
    assert json.loads(parsed.model_dump_json()) == timm
    command = SubmitJob.model_validate(
        {
            "job_id": "j1",
            "project_id": "p1",
            "spec": timm,
            "dataset": {"id": "d1", "format": "imagefolder", "storage_key": "datasets/d1/x.zip"},
            "pool": "local",
            "max_attempts": 1,
            "trace_id": "t" * 32,
            "submitted_at": "2026-01-01T00:00:00Z",
        }
    )
    assert command.spec == parsed
    assert json.loads(command.model_dump_json())["spec"] == timm


def test_either_framework_parses_to_its_own_model_with_errors_at_the_field():
    yolo = {"framework": "ultralytics", "task": "segment", "model": "yolo11n-seg.yaml"}
    assert isinstance(parse_job_spec(yolo), UltralyticsSpec)
    timm = {"framework": "timm", "task": "classify", "model": "r", "hyperparameters": {"epochs": 0}}
    with pytest.raises(ValidationError) as caught:
        parse_job_spec(timm)
    assert [e["loc"] for e in caught.value.errors()] == [("hyperparameters", "epochs")]
    with pytest.raises(ValidationError, match="framework"):
        parse_job_spec({"framework": "caffe", "task": "classify", "model": "r"})


def test_a_full_spec_passes_through_under_ultralytics_names():
    params = {
        "epochs": 3,
        "imgsz": 64,
        "batch": 8,
        "lr0": 0.01,
        "optimizer": "AdamW",
        "patience": 5,
        "mosaic": 0.0,
        "fliplr": 0.5,
        "cos_lr": True,
        "seed": 1,
    }
    parsed = spec(hyperparameters=params)
    assert parsed.hyperparameters == params
    assert parse_job_spec(json.loads(parsed.model_dump_json())) == parsed


@pytest.mark.parametrize(
    ("task", "model"),
    [
        ("detect", "yolo11n.yaml"),
        ("detect", "yolov8s.yaml"),
        ("segment", "yolo11n-seg.yaml"),
        ("segment", "yolov8m-seg.yaml"),
        ("classify", "yolo11n-cls.yaml"),
        ("classify", "yolov8n-cls.yaml"),
    ],
)
def test_models_from_yaml_for_each_task(task, model):
    assert spec(task=task, model=model).model == model
    assert task_of_model(model) == task


@pytest.mark.parametrize(
    ("task", "model", "message"),
    [
        ("detect", "yolo11n.pt", "is not an Ultralytics model YAML"),
        ("detect", "../../etc/passwd.yaml", "is not an Ultralytics model YAML"),
        ("detect", "https://example.com/yolo11n.yaml", "is not an Ultralytics model YAML"),
        ("segment", "yolo11n.yaml", "does not fit task 'segment' (use yolo11n-seg.yaml)"),
        ("classify", "yolo11n-seg.yaml", "does not fit task 'classify' (use yolo11n-cls.yaml)"),
        ("detect", "yolo11n-cls.yaml", "does not fit task 'detect' (use yolo11n.yaml)"),
    ],
)
def test_models_that_do_not_fit_are_refused_at_the_model(task, model, message):
    [(location, text)] = refusal(task=task, model=model)
    assert location == "model"
    assert message in text


def test_other_frameworks_and_tasks_are_refused():
    assert refusal(framework="timm")[0][0] == "framework"
    assert refusal(task="pose")[0][0] == "task"
    assert refusal(weights="x.pt")[0][0] == "weights"


def test_an_unknown_hyperparameter_is_refused_at_its_name():
    assert refusal(hyperparameters={"epochs": 2, "learning_rate": 0.1}) == [
        ("hyperparameters.learning_rate", "unknown Ultralytics train argument")
    ]


@pytest.mark.parametrize(
    "name", ["project", "name", "data", "device", "resume", "exist_ok", "save_dir", "workers", "model"]
)
def test_arguments_the_platform_owns_are_refused_at_their_name(name):
    assert refusal(hyperparameters={name: "x"}) == [
        (f"hyperparameters.{name}", "set by the platform, not by a job")
    ]


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("epochs", 0, "must be at least 1"),
        ("epochs", 2.5, "must be an integer"),
        ("epochs", "10", "must be an integer"),
        ("epochs", True, "must be an integer"),
        ("lr0", "fast", "must be a number"),
        ("mosaic", 1.5, "must be at most 1"),
        ("optimizer", "Lion", "must be one of auto, SGD"),
        ("cos_lr", 1, "must be true or false"),
    ],
)
def test_values_are_checked(name, value, problem):
    [(location, message)] = refusal(hyperparameters={name: value})
    assert location == f"hyperparameters.{name}"
    assert message.startswith(problem)


def test_every_problem_is_listed():
    found = ultralytics_hyperparameters.problems({"epochs": 0, "foo": 1, "device": "cuda"})
    assert [str(problem) for problem in found] == [
        "hyperparameters.epochs: must be at least 1",
        "hyperparameters.foo: unknown Ultralytics train argument",
        "hyperparameters.device: set by the platform, not by a job",
    ]
    assert [problem.kind for problem in found] == ["invalid", "unknown", "platform"]


def test_the_published_schema_lists_the_allowed_arguments():
    schema = UltralyticsSpec.model_json_schema()["properties"]["hyperparameters"]
    assert set(schema["properties"]) == set(ultralytics_hyperparameters.ALLOWED)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["epochs"] == {"type": "integer", "minimum": 1, "maximum": 10_000}
    assert schema["properties"]["optimizer"]["enum"][:2] == ["auto", "SGD"]


def test_the_allow_list_imports_nothing_heavy():
    """Every service imports contracts: the allow-list must not pull in torch or Ultralytics."""
    source = Path(ultralytics_hyperparameters.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "collections", "dataclasses"}
    assert not set(ultralytics_hyperparameters.ALLOWED) & ultralytics_hyperparameters.FORBIDDEN


@pytest.mark.parametrize(
    ("body", "fits", "refused"),
    [
        ({"framework": "timm", "task": "classify", "model": "resnet18"}, ["imagefolder"], "yolo-detect"),
        ({"task": "detect", "model": "yolo11n.yaml"}, ["yolo-detect", "yolo-segment"], "imagefolder"),
        ({"task": "segment", "model": "yolo11n-seg.yaml"}, ["yolo-segment"], "yolo-detect"),
        ({"task": "classify", "model": "yolo11n-cls.yaml"}, ["imagefolder"], "yolo-segment"),
    ],
)
def test_which_dataset_formats_fit_which_spec(body, fits, refused):
    parsed = parse_job_spec({"framework": "ultralytics"} | body)
    assert [dataset_mismatch(parsed, fmt) for fmt in fits] == [None] * len(fits)
    problem = dataset_mismatch(parsed, refused)
    assert problem is not None
    assert problem.startswith(f"dataset format {refused!r} does not fit {parsed.framework} task")


@pytest.mark.parametrize(
    "base",
    [
        {"framework": "timm", "task": "classify", "model": "resnet18"},
        {"framework": "ultralytics", "task": "detect", "model": "yolo11n.yaml"},
    ],
)
def test_exports_are_asked_once_each_and_left_out_when_none(base):
    asked = parse_job_spec({**base, "export": ["torchscript", "onnx", "torchscript"]})
    assert asked.export == ["torchscript", "onnx"]
    assert parse_job_spec(json.loads(asked.model_dump_json())) == asked
    for none in ({}, {"export": None}, {"export": []}):
        spec = parse_job_spec({**base, **none})
        assert spec.export is None
        assert "export" not in json.loads(spec.model_dump_json())
    with pytest.raises(ValidationError) as caught:
        parse_job_spec({**base, "export": ["onnx", "tflite"]})
    assert [e["loc"] for e in caught.value.errors()] == [("export", 1)]
