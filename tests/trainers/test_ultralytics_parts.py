"""Pure parts of the Ultralytics trainer: the spec it reads from its environment, metric names, the data.yaml
rewrite, and how a refused spec becomes a failure reason. The spec: tests/contracts/test_job_specs.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from contracts.ultralytics import UltralyticsSpec
from trainers.env import TrainerEnv
from trainers.ultralytics.data import DatasetError, classify_data, yolo_data
from trainers.ultralytics.metrics import simple_name, simplify


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
    from trainers.outcome import spec_problems

    with pytest.raises(ValidationError) as caught:
        UltralyticsSpec.model_validate(
            {"framework": "ultralytics", "task": "pose", "model": "yolo11n.yaml", "hyperparameters": {"x": 1}}
        )
    assert spec_problems(caught.value) == (
        "invalid job spec: task: Input should be 'detect', 'segment' or 'classify'; "
        "hyperparameters.x: unknown Ultralytics train argument"
    )
