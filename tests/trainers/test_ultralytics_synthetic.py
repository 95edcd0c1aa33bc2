"""The generated YOLO datasets are valid Ultralytics datasets: data.yaml, paired images and labels, labels
that parse with class ids and coordinates in range, the same bytes for the same seed."""

from __future__ import annotations

import io
import zipfile

import pytest
import yaml
from PIL import Image

from vtp.synthetic import make_yolo_detect_archive, make_yolo_segment_archive, yolo_class_names


def read(archive) -> dict[str, bytes]:
    with zipfile.ZipFile(archive) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def labels(files: dict[str, bytes], split: str) -> dict[str, list[list[float]]]:
    prefix = f"labels/{split}/"
    return {
        name.removeprefix(prefix).removesuffix(".txt"): [
            [float(v) for v in line.split()] for line in files[name].decode().splitlines()
        ]
        for name in files
        if name.startswith(prefix)
    }


@pytest.mark.parametrize("make", [make_yolo_detect_archive, make_yolo_segment_archive])
def test_layout_and_data_yaml(tmp_path, make):
    files = read(make(tmp_path, classes=3, train=10, val=5, size=48))
    data = yaml.safe_load(files["data.yaml"])
    assert data == {
        "path": ".",
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(yolo_class_names(3))),
    }
    for split, count in (("train", 10), ("val", 5)):
        images = sorted(n.removeprefix(f"images/{split}/") for n in files if n.startswith(f"images/{split}/"))
        assert len(images) == count
        assert sorted(f"{stem}.png" for stem in labels(files, split)) == images
        for name in images:
            image = Image.open(io.BytesIO(files[f"images/{split}/{name}"]))
            assert (image.format, image.size, image.mode) == ("PNG", (48, 48), "RGB")


def test_detect_labels_are_normalised_boxes(tmp_path):
    files = read(make_yolo_detect_archive(tmp_path, classes=2))
    rows = [row for split in ("train", "val") for rows in labels(files, split).values() for row in rows]
    assert len(rows) >= 20
    assert {int(row[0]) for row in rows} == {0, 1}
    for cls, cx, cy, w, h in rows:
        assert cls.is_integer()
        assert 0 < w <= 1
        assert 0 < h <= 1
        assert 0 <= cx - w / 2
        assert cx + w / 2 <= 1 + 1e-6
        assert 0 <= cy - h / 2
        assert cy + h / 2 <= 1 + 1e-6


def test_segment_labels_are_normalised_polygons(tmp_path):
    files = read(make_yolo_segment_archive(tmp_path, classes=2))
    rows = [row for split in ("train", "val") for rows in labels(files, split).values() for row in rows]
    assert {int(row[0]) for row in rows} == {0, 1}
    for row in rows:
        points = row[1:]
        assert len(points) % 2 == 0
        assert len(points) >= 6
        assert all(0 <= v <= 1 for v in points)


@pytest.mark.parametrize("make", [make_yolo_detect_archive, make_yolo_segment_archive])
def test_deterministic_per_seed(tmp_path, make):
    first = make(tmp_path / "a.zip", seed=3).read_bytes()
    assert make(tmp_path / "b.zip", seed=3).read_bytes() == first
    assert make(tmp_path / "c.zip", seed=4).read_bytes() != first


def test_folder_destination_gets_a_default_name(tmp_path):
    assert make_yolo_detect_archive(tmp_path).name == "synthetic-detect.zip"
    assert make_yolo_segment_archive(tmp_path).name == "synthetic-segment.zip"
