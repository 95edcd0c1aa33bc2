"""YOLO detect and segment datasets: READY with exact counts, or REJECTED with each problem named and
placed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.trainers.validation_archives import (
    Members,
    inputs,
    png,
    write_tar,
    write_zip,
    yolo_members,
)
from trainers.validation import DatasetStatus, ValidationReport, YoloSplit, validate_archive
from vtp.synthetic import yolo_class_names

FORMATS = ["yolo-detect", "yolo-segment"]


def validate(tmp_path: Path, members: Members, dataset_format: str = "yolo-detect") -> ValidationReport:
    archive = write_zip(inputs(tmp_path) / "upload.zip", members)
    return validate_archive(archive, dataset_format, workdir=tmp_path / "ds" / "x")


def problems(report: ValidationReport) -> list[tuple[str | None, int | None, str]]:
    assert report.status == DatasetStatus.REJECTED
    return [(problem.file, problem.line, problem.message) for problem in report.problems]


def expected_instances(members: Members, split: str) -> dict[str, int]:
    """Counted straight from the label lines, independently of the validator."""
    names = yolo_class_names(2)
    counts = Counter(
        names[int(line.split()[0])]
        for name, data in members.items()
        if name.startswith(f"labels/{split}/")
        for line in data.decode().splitlines()
    )
    return {name: counts[name] for name in names}


@pytest.mark.parametrize("dataset_format", FORMATS)
def test_a_synthetic_dataset_is_ready_with_exact_counts(tmp_path, dataset_format):
    members = yolo_members(tmp_path, dataset_format, train=4, val=2)
    report = validate(tmp_path, members, dataset_format)
    assert report.status == DatasetStatus.READY, report.problems
    assert report.problem_count == 0
    assert report.summary is not None
    assert report.summary.classes == ["box_00", "ellipse_01"]
    assert report.summary.splits == {
        "train": YoloSplit(
            images=4, labels=4, background_images=0, instances=expected_instances(members, "train")
        ),
        "val": YoloSplit(
            images=2, labels=2, background_images=0, instances=expected_instances(members, "val")
        ),
    }
    assert report.summary.files == 13
    assert report.summary.total_bytes == sum(len(data) for data in members.values())
    assert report.summary.other_files == 0
    assert ValidationReport.model_validate_json(report.model_dump_json()) == report


def test_the_content_hash_follows_the_files_not_the_archive(tmp_path):
    members = yolo_members(tmp_path)
    first = validate(tmp_path / "a", members).content_hash
    as_tar = write_tar(
        inputs(tmp_path) / "same.tar.gz", {f"top/{name}": data for name, data in members.items()}
    )
    assert validate_archive(as_tar, "yolo-detect").content_hash == first
    changed = validate(
        tmp_path / "b", {**members, "labels/val/0000.txt": b"0 0.5 0.5 0.2 0.2\n"}
    ).content_hash
    assert first is not None
    assert first.startswith("sha256:")
    assert changed != first


def test_images_without_labels_are_background_and_fine(tmp_path):
    members = yolo_members(tmp_path)
    del members["labels/train/0001.txt"]
    report = validate(tmp_path, {**members, "images/train/empty.jpg": png()})
    assert report.status == DatasetStatus.READY, report.problems
    assert report.summary is not None
    train = report.summary.splits["train"]
    assert (train.images, train.labels, train.background_images) == (4, 2, 2)


def test_a_label_without_its_image_is_a_problem(tmp_path):
    members = yolo_members(tmp_path)
    del members["images/val/0001.png"]
    assert problems(validate(tmp_path, members)) == [
        ("labels/val/0001.txt", None, "label without image: no image in images/val/ is named 0001.*")
    ]


def test_a_non_image_posing_as_image_is_a_problem(tmp_path):
    members = {**yolo_members(tmp_path), "images/train/0001.png": b"GIF? no, plain text"}
    assert problems(validate(tmp_path, members)) == [
        (
            "images/train/0001.png",
            None,
            "non-image file posing as image: its content is not an image format Pillow can read",
        )
    ]


def test_files_of_unexpected_kinds_are_problems(tmp_path):
    members = {**yolo_members(tmp_path), "images/train/notes.txt": b"x", "labels/val/0000.json": b"{}"}
    members["README.md"] = b"# a readme at the root is fine"
    report = validate(tmp_path, members)
    assert problems(report) == [
        (
            "images/train/notes.txt",
            None,
            "unexpected file in an image folder: it holds images only "
            "(.bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp)",
        ),
        ("labels/val/0000.json", None, "unexpected file in a label folder: YOLO labels are .txt files"),
    ]
    assert report.summary is not None
    assert report.summary.other_files == 1


@pytest.mark.parametrize(
    ("dataset_format", "line", "message"),
    [
        ("yolo-detect", "0 0.5 0.5 0.2", "line has 4 values; a box needs 5: class cx cy w h"),
        ("yolo-detect", "0 0.5 0.5 0.2 0.2 0.1", "line has 6 values; a box needs 5: class cx cy w h"),
        ("yolo-detect", "x 0.5 0.5 0.2 0.2", "class id 'x' is not an integer"),
        ("yolo-detect", "1.5 0.5 0.5 0.2 0.2", "class id '1.5' is not an integer"),
        (
            "yolo-detect",
            "7 0.5 0.5 0.2 0.2",
            "class id 7 is out of range: data.yaml names 2 classes (ids 0-1)",
        ),
        (
            "yolo-detect",
            "-1 0.5 0.5 0.2 0.2",
            "class id -1 is out of range: data.yaml names 2 classes (ids 0-1)",
        ),
        ("yolo-detect", "0 1.5 0.5 0.2 0.2", "cx 1.5 is out of range: coordinates are normalised to 0..1"),
        ("yolo-detect", "0 0.5 -0.1 0.2 0.2", "cy -0.1 is out of range: coordinates are normalised to 0..1"),
        ("yolo-detect", "0 0.5 0.5 nan 0.2", "w nan is out of range: coordinates are normalised to 0..1"),
        ("yolo-detect", "0 0.5 0.5 0.2 0", "box h 0 must be greater than 0"),
        ("yolo-detect", "0 0.5 abc 0.2 0.2", "cy 'abc' is not a number"),
        (
            "yolo-segment",
            "0 0.1 0.1 0.2 0.2",
            "polygon has 2 points; it needs at least 3: class x1 y1 x2 y2 x3 y3 ...",
        ),
        (
            "yolo-segment",
            "0 0.1 0.1 0.2 0.2 0.3",
            "line has 5 coordinates, an odd count; a polygon needs x y pairs: class x1 y1 x2 y2 x3 y3 ...",
        ),
        (
            "yolo-segment",
            "0 0.1 0.1 0.2 0.2 0.3 1.2",
            "y3 1.2 is out of range: coordinates are normalised to 0..1",
        ),
        (
            "yolo-segment",
            "2 0.1 0.1 0.2 0.2 0.3 0.3",
            "class id 2 is out of range: data.yaml names 2 classes (ids 0-1)",
        ),
    ],
)
def test_malformed_label_lines_are_named_with_file_and_line(tmp_path, dataset_format, line, message):
    members = yolo_members(tmp_path, dataset_format)
    good = members["labels/train/0002.txt"].decode()
    members["labels/train/0002.txt"] = f"{good}\n{line}\n".encode()  # a blank line in between is fine
    expected_line = len(good.splitlines()) + 2
    assert problems(validate(tmp_path, members, dataset_format)) == [
        ("labels/train/0002.txt", expected_line, message)
    ]


def test_only_the_first_50_problems_are_listed_but_all_are_counted(tmp_path):
    members = {**yolo_members(tmp_path), "labels/train/0000.txt": b"9 0.5 0.5 0.2 0.2\n" * 70}
    report = validate(tmp_path, members)
    assert report.problem_count == 70
    assert len(report.problems) == 50
    assert report.problems[49].line == 50


@pytest.mark.parametrize(
    ("data_yaml", "expected"),
    [
        (
            None,
            ("data.yaml", None, "missing data.yaml: a YOLO dataset needs it at its root (names, train, val)"),
        ),
        (b"names: [a, b\ntrain: x\n", ("data.yaml", 2, "data.yaml is not valid YAML")),
        (b"- a\n- b\n", ("data.yaml", None, "data.yaml must be a mapping (names:, train:, val:), not list")),
        (b"train: images/train\nval: images/val\n", ("data.yaml", None, "names must list the classes")),
        (
            b"train: images/train\nval: images/val\nnames: {0: a, 2: b}\n",
            ("data.yaml", None, "names ids must run 0..1 without gaps; found [0, 2]"),
        ),
        (
            b"train: images/train\nval: images/val\nnames: [a, a]\n",
            ("data.yaml", None, "class name 'a' is used by ids 0 and 1"),
        ),
        (
            b"train: images/train\nval: images/val\nnc: 3\nnames: [a, b]\n",
            ("data.yaml", None, "nc is 3 but names lists 2 classes"),
        ),
        (b"train: images/train\nnames: [a, b]\n", ("data.yaml", None, "val is missing")),
        (
            b"train: images/train\nval: images/valid\nnames: [a, b]\n",
            ("data.yaml", None, "val 'images/valid' does not exist: no folder images/valid/ in the dataset"),
        ),
        (
            b"path: ../elsewhere\ntrain: images/train\nval: images/val\nnames: [a, b]\n",
            ("data.yaml", None, "path '../elsewhere' points outside the dataset: use a relative path"),
        ),
        (
            b"path: /home/me/data\ntrain: images/train\nval: images/val\nnames: [a, b]\n",
            ("data.yaml", None, "path '/home/me/data' points outside the dataset: use a relative path"),
        ),
        (
            b"train: ../../etc\nval: images/val\nnames: [a, b]\n",
            ("data.yaml", None, "train '../../etc' is not a relative path inside the dataset"),
        ),
        (
            b"train: data.yaml\nval: images/val\nnames: [a, b]\n",
            ("data.yaml", None, "train 'data.yaml' is a file: point it at a folder of images"),
        ),
    ],
)
def test_data_yaml_problems_are_named(tmp_path, data_yaml, expected):
    members = yolo_members(tmp_path)
    if data_yaml is None:
        del members["data.yaml"]
    else:
        members["data.yaml"] = data_yaml
    found = problems(validate(tmp_path, members))
    file, line, message = expected
    assert [(file, line)] == [(problem[0], problem[1]) for problem in found]
    assert found[0][2].startswith(message)


def test_names_as_a_mapping_and_several_folders_per_split_work(tmp_path):
    members = yolo_members(tmp_path)
    members["data.yaml"] = (
        b"path: .\ntrain: [images/train, extra/images]\nval: images/val\nnames: {0: box, 1: ellipse}\n"
    )
    members["extra/images/more.png"] = png()
    members["extra/labels/more.txt"] = b"1 0.5 0.5 0.5 0.5\n"
    report = validate(tmp_path, members)
    assert report.status == DatasetStatus.READY, report.problems
    assert report.summary is not None
    assert report.summary.classes == ["box", "ellipse"]
    train = report.summary.splits["train"]
    assert (train.images, train.labels) == (4, 4)
    assert train.instances["ellipse"] == expected_instances(members, "train")["ellipse_01"] + 1
