"""Imagefolder datasets (train/<class>/*, val/<class>/*): READY with images per class per split, or REJECTED
with each problem named. Also the command-line entry point."""

from __future__ import annotations

import json
from pathlib import Path

from tests.trainers.validation_archives import Members, imagefolder_members, inputs, png, write_zip
from trainers.validation import DatasetStatus, ImageFolderSplit, ValidationReport, validate_archive
from trainers.validation.__main__ import main

CLASSES = ["class_00_circle", "class_01_square", "class_02_triangle"]


def validate(tmp_path: Path, members: Members) -> ValidationReport:
    archive = write_zip(inputs(tmp_path) / "upload.zip", members)
    return validate_archive(archive, "imagefolder", workdir=tmp_path / "ds" / "x")


def problems(report: ValidationReport) -> list[tuple[str | None, str]]:
    assert report.status == DatasetStatus.REJECTED
    assert all(problem.line is None for problem in report.problems)
    return [(problem.file, problem.message) for problem in report.problems]


def test_a_synthetic_dataset_is_ready_with_images_per_class(tmp_path):
    members = imagefolder_members(tmp_path)
    report = validate(tmp_path, members)
    assert report.status == DatasetStatus.READY, report.problems
    assert report.summary is not None
    assert report.summary.classes == CLASSES
    assert report.summary.splits == {
        "train": ImageFolderSplit(images=6, images_per_class=dict.fromkeys(CLASSES, 2)),
        "val": ImageFolderSplit(images=3, images_per_class=dict.fromkeys(CLASSES, 1)),
    }
    assert (report.summary.files, report.summary.other_files) == (9, 0)
    assert ValidationReport.model_validate_json(report.model_dump_json()) == report


def test_a_top_folder_and_archiver_litter_are_looked_through(tmp_path):
    members = {f"shapes/{name}": data for name, data in imagefolder_members(tmp_path).items()}
    litter = {"__MACOSX/shapes/._train": b"\0", "shapes/.DS_Store": b"\0", "shapes/train/Thumbs.db": b"\0"}
    report = validate(tmp_path, {**members, **litter})
    assert report.status == DatasetStatus.READY, report.problems
    assert report.summary is not None
    assert report.summary.files == 9


def test_layout_problems_are_named(tmp_path):
    members = imagefolder_members(tmp_path)
    members["train/loose.png"] = png()
    members["train/class_01_square/labels.csv"] = b"a,b"
    members["train/class_02_triangle/0000.png"] = b"not a png at all"
    members["val/class_03_extra/0000.png"] = png()
    del members["val/class_00_circle/0000.png"]
    members["train/class_04_empty/"] = b""
    assert problems(validate(tmp_path, members)) == [
        (
            "train/class_01_square/labels.csv",
            "unexpected file kind (.csv): class folders hold images only "
            "(.bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp)",
        ),
        (
            "train/class_02_triangle/0000.png",
            "non-image file posing as image: its content is not an image format Pillow can read",
        ),
        ("train/loose.png", "file outside a class folder: images go in train/<class>/"),
        ("train/class_04_empty/", "class folder has no images"),
        ("val/", "class 'class_00_circle' is in train/ but has no folder in val/"),
        ("val/", "class 'class_04_empty' is in train/ but has no folder in val/"),
        (
            "val/class_03_extra/",
            "class 'class_03_extra' is not in train/: every split needs the same classes",
        ),
    ]


def test_a_missing_split_is_named(tmp_path):
    members = {
        name: data for name, data in imagefolder_members(tmp_path).items() if name.startswith("train/")
    }
    assert problems(validate(tmp_path, members)) == [
        ("val/", "missing val/ folder: imagefolder needs train/<class>/<image> and val/<class>/<image>")
    ]


def test_the_cli_prints_the_report_as_json(tmp_path, capsys):
    archive = write_zip(inputs(tmp_path) / "upload.zip", imagefolder_members(tmp_path))
    assert main([str(archive), "--format", "imagefolder"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "READY"
    assert report["summary"]["splits"]["val"]["images"] == 3
    assert main([str(archive), "--format", "imagefolder", "--max-files", "5"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "REJECTED"
    assert report["problems"][0]["message"].startswith("too many entries")
