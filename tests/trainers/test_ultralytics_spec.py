"""The Ultralytics job spec and its hyperparameter allow-list, metric names, and the data.yaml rewrite:
pure parts, no training."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from trainers.env import TrainerEnv
from trainers.ultralytics import hyperparameters
from trainers.ultralytics.data import DatasetError, classify_data, yolo_data
from trainers.ultralytics.metrics import simple_name, simplify
from trainers.ultralytics.spec import UltralyticsSpec


def spec(**changes: object) -> UltralyticsSpec:
    body = {"framework": "ultralytics", "task": "detect", "model": "yolo11n.yaml"} | changes
    return UltralyticsSpec.model_validate(body)


def refusal(**changes: object) -> str:
    with pytest.raises(ValidationError) as caught:
        spec(**changes)
    return str(caught.value)


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
    assert UltralyticsSpec.model_validate_json(parsed.model_dump_json()) == parsed


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
def test_models_that_do_not_fit_are_refused(task, model, message):
    assert message in refusal(task=task, model=model)


def test_other_frameworks_and_tasks_are_refused():
    assert "framework" in refusal(framework="timm")
    assert "task" in refusal(task="pose")
    assert "extra" in refusal(weights="x.pt").lower()


def test_an_unknown_hyperparameter_is_refused_by_name():
    message = refusal(hyperparameters={"epochs": 2, "learning_rate": 0.1})
    assert "hyperparameters.learning_rate: unknown Ultralytics train argument" in message
    assert "hyperparameters.epochs" not in message


@pytest.mark.parametrize(
    "name", ["project", "name", "data", "device", "resume", "exist_ok", "save_dir", "workers", "model"]
)
def test_arguments_the_platform_owns_are_refused_by_name(name):
    assert f"hyperparameters.{name}: set by the platform, not by a job" in refusal(
        hyperparameters={name: "x"}
    )


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
    assert f"hyperparameters.{name}: {problem}" in refusal(hyperparameters={name: value})


def test_every_problem_is_listed():
    found = hyperparameters.problems({"epochs": 0, "foo": 1, "device": "cuda"})
    assert found == [
        "hyperparameters.epochs: must be at least 1",
        "hyperparameters.foo: unknown Ultralytics train argument",
        "hyperparameters.device: set by the platform, not by a job",
    ]


def test_the_allow_list_imports_nothing_heavy():
    """The API imports this module to answer 422; it must not pull in torch, Ultralytics or pydantic."""
    source = Path(hyperparameters.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "collections", "dataclasses"}
    assert not set(hyperparameters.ALLOWED) & hyperparameters.FORBIDDEN


def test_the_environment_carries_the_spec():
    body = {"framework": "ultralytics", "task": "segment", "model": "yolo11n-seg.yaml"}
    env = TrainerEnv.from_environ(
        {
            "VTP_JOB_ID": "j1",
            "VTP_ATTEMPT": "2",
            "VTP_CALLBACK_URL": "http://events/v1/callbacks",
            "VTP_CALLBACK_TOKEN": "tok",
            "VTP_JOB_SPEC": json.dumps(body | {"hyperparameters": {"epochs": 1}}),
            "VTP_DATASET_URL": "http://events/v1/storage/x.zip",
            "VTP_DATASET_FORMAT": "yolo-segment",
        },
        spec_model=UltralyticsSpec,
    )
    assert (env.attempt, env.spec.task, env.spec.hyperparameters) == (2, "segment", {"epochs": 1})
    assert env.heartbeat_interval == 5.0


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("metrics/precision(B)", "precision"),
        ("metrics/recall(B)", "recall"),
        ("metrics/mAP50(B)", "mAP50"),
        ("metrics/mAP50-95(B)", "mAP50-95"),
        ("metrics/mAP50(M)", "mAP50_mask"),
        ("metrics/accuracy_top1", "top1"),
        ("metrics/accuracy_top5", "top5"),
        ("train/box_loss", "train_box_loss"),
        ("val/loss", "val_loss"),
        ("fitness", "fitness"),
    ],
)
def test_metric_names_are_simple(key, name):
    assert simple_name(key) == name


def test_only_finite_numbers_travel():
    assert simplify({"metrics/mAP50(B)": 0.51234567, "val/loss": float("nan"), "x": "text"}) == {
        "mAP50": 0.512346
    }


def write_yaml(root: Path, data: dict) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(yaml.safe_dump(data))


def test_data_yaml_gets_an_absolute_path_and_no_download(tmp_path):
    write_yaml(
        tmp_path / "ds",
        {
            "path": ".",
            "train": "images/train",
            "val": "images/val",
            "names": {0: "a"},
            "download": "https://example.com/x.zip",
        },
    )
    data = yaml.safe_load(yolo_data(tmp_path / "ds").read_text())
    assert data["path"] == str((tmp_path / "ds").resolve())
    assert "download" not in data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"path": "/etc", "train": "a", "val": "b", "names": ["x"]}, "path '/etc' points outside"),
        ({"path": ".", "train": "../../x", "val": "b", "names": ["x"]}, "train '../../x' points outside"),
        ({"train": "a", "val": ["b", "/abs"], "names": ["x"]}, "val '/abs' points outside"),
        ({"train": "a", "names": ["x"]}, "needs both train and val"),
        ({"train": "a", "val": "b"}, "has no names"),
    ],
)
def test_data_yaml_that_leaves_the_dataset_is_refused(tmp_path, data, message):
    write_yaml(tmp_path / "ds", data)
    with pytest.raises(DatasetError) as caught:
        yolo_data(tmp_path / "ds")
    assert message in str(caught.value)


def test_missing_data_yaml_and_imagefolder_layout(tmp_path):
    with pytest.raises(DatasetError, match=r"no data\.yaml"):
        yolo_data(tmp_path)
    with pytest.raises(DatasetError, match="no train/"):
        classify_data(tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match="no val/"):
        classify_data(tmp_path)
    (tmp_path / "val").mkdir()
    assert classify_data(tmp_path) == tmp_path


def test_a_refused_spec_becomes_one_readable_reason():
    from trainers.ultralytics.main import spec_problems

    with pytest.raises(ValidationError) as caught:
        UltralyticsSpec.model_validate(
            {"framework": "ultralytics", "task": "pose", "model": "yolo11n.yaml", "hyperparameters": {"x": 1}}
        )
    assert spec_problems(caught.value) == (
        "invalid job spec: task: Input should be 'detect', 'segment' or 'classify'; "
        "hyperparameters.x: unknown Ultralytics train argument"
    )
