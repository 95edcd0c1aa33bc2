"""From an extracted archive to the `data=` argument Ultralytics takes: a `data.yaml` whose every path stays
inside the dataset folder (detect, segment), or the imagefolder root (classify)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from contracts.datasets import YOLO_DATA_FILES
from trainers.failures import DatasetUnfit

SPLIT_KEYS = ("train", "val", "test", "minival")
CLASSIFY_VAL = ("val", "test")


class DatasetError(DatasetUnfit):
    """The dataset does not fit the task, or its data.yaml points somewhere it must not (not retryable)."""


def _inside(root: Path, base: Path, value: str, what: str) -> Path:
    path = (base / value).resolve()
    if not path.is_relative_to(root):
        raise DatasetError(f"data.yaml {what} {value!r} points outside the dataset")
    return path


def _find_yaml(root: Path) -> Path:
    for name in YOLO_DATA_FILES:
        if (root / name).is_file():
            return root / name
    raise DatasetError("the dataset has no data.yaml (Ultralytics layout: data.yaml, images/, labels/)")


def yolo_data(root: Path) -> Path:
    """Rewrite the dataset's data.yaml with an absolute `path:` and return it. Paths that leave the dataset
    folder are refused, and `download:` is dropped: nothing is fetched from anywhere."""
    root = root.resolve()
    source = _find_yaml(root)
    try:
        data: Any = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise DatasetError(f"data.yaml is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise DatasetError("data.yaml must be a mapping")
    if not data.get("names") and not data.get("nc"):
        raise DatasetError("data.yaml has no names")
    base = _inside(root, root, str(data.get("path") or "."), "path")
    for key in SPLIT_KEYS:
        entries = data.get(key)
        for entry in entries if isinstance(entries, list) else [entries] if entries else []:
            _inside(root, base, str(entry), key)
    if not data.get("train") or not data.get("val"):
        raise DatasetError("data.yaml needs both train and val")
    data.pop("download", None)
    data["path"] = str(base)
    target = root / "data.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def classify_data(root: Path) -> Path:
    if not (root / "train").is_dir():
        raise DatasetError("the dataset has no train/ folder (imagefolder layout: train/<class>/*.png)")
    if not any((root / name).is_dir() for name in CLASSIFY_VAL):
        raise DatasetError("the dataset has no val/ folder (imagefolder layout: val/<class>/*.png)")
    return root
