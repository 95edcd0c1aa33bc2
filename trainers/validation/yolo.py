"""Ultralytics detect and segment datasets: data.yaml, images/<split>, labels/<split> with one .txt per image.
Label lines are `class cx cy w h` (detect) or `class x1 y1 x2 y2 ...` (segment), normalised to 0..1."""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

from trainers.validation.data_yaml import DataYaml, read_data_yaml
from trainers.validation.images import image_problem
from trainers.validation.layout import IMAGE_SUFFIXES, is_image_name
from trainers.validation.report import DatasetSummary, ProblemLog, YoloSplit

_BOX_FIELDS = ("cx", "cy", "w", "h")
_IMAGE_LIST = ", ".join(sorted(IMAGE_SUFFIXES))


def check_yolo(
    root: Path, files: list[PurePosixPath], problems: ProblemLog, *, segment: bool
) -> DatasetSummary:
    data = read_data_yaml(root, problems)
    summary = DatasetSummary()
    if data is None:
        return summary
    summary.classes = data.names
    used = {data.file}
    for split, folders in data.splits.items():
        stats = YoloSplit(instances=dict.fromkeys(data.names, 0))
        for folder in folders:
            used |= _check_folder(root, files, folder, data, segment, stats, problems)
        if stats.images == 0:
            problems.add(f"{folders[0]}/", f"the {split} split has no images ({_IMAGE_LIST})")
        summary.splits[split] = stats
    summary.other_files = len(set(files) - used)
    return summary


def label_for(image: PurePosixPath) -> PurePosixPath:
    """Ultralytics' rule: the last `images` folder in the path becomes `labels`, the suffix `.txt`."""
    return _images_to_labels(image.parent) / f"{image.stem}.txt"


def _images_to_labels(folder: PurePosixPath) -> PurePosixPath:
    parts = list(folder.parts)
    if "images" in parts:
        parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
    return PurePosixPath(*parts)


def _check_folder(
    root: Path,
    files: list[PurePosixPath],
    folder: PurePosixPath,
    data: DataYaml,
    segment: bool,
    stats: YoloSplit,
    problems: ProblemLog,
) -> set[PurePosixPath]:
    """Check one image folder of a split and its label folder; return the files it accounts for."""
    label_folder = _images_to_labels(folder)
    under_images = [file for file in files if folder in file.parents]
    under_labels = [file for file in files if label_folder in file.parents]
    images = [file for file in under_images if is_image_name(file)]
    labels = {file for file in under_labels if file.suffix == ".txt"}
    for file in sorted(set(under_images) - set(images) - labels):
        problems.add(file, f"unexpected file in an image folder: it holds images only ({_IMAGE_LIST})")
    if label_folder != folder:
        for file in sorted(set(under_labels) - labels):
            problems.add(file, "unexpected file in a label folder: YOLO labels are .txt files")
    paired = set()
    for image in images:
        stats.images += 1
        problem = image_problem(root / image)
        if problem:
            problems.add(image, problem)
        label = label_for(image)
        if label in labels:
            paired.add(label)
            stats.labels += 1
            _check_label_file(root, label, data.names, segment, stats, problems)
        else:
            stats.background_images += 1
    for label in sorted(labels - paired):
        problems.add(label, f"label without image: no image in {folder}/ is named {label.stem}.*")
    return set(under_images) | set(under_labels)


def _check_label_file(
    root: Path, label: PurePosixPath, names: list[str], segment: bool, stats: YoloSplit, problems: ProblemLog
) -> None:
    try:
        text = (root / label).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.add(label, "label file is not UTF-8 text")
        return
    for number, line in enumerate(text.splitlines(), start=1):
        values = line.split()
        if not values:
            continue
        problem = line_problem(values, len(names), segment)
        if problem:
            problems.add(label, problem, number)
        else:
            stats.instances[names[int(values[0])]] += 1


def line_problem(values: list[str], classes: int, segment: bool) -> str | None:
    """What is wrong with one label line (split into values), or None."""
    coordinates = len(values) - 1
    if segment and coordinates % 2:
        return (
            f"line has {coordinates} coordinates, an odd count; a polygon needs x y pairs: "
            "class x1 y1 x2 y2 x3 y3 ..."
        )
    if segment and coordinates < 6:
        return f"polygon has {coordinates // 2} points; it needs at least 3: class x1 y1 x2 y2 x3 y3 ..."
    if not segment and len(values) != 5:
        return f"line has {len(values)} values; a box needs 5: class cx cy w h"
    try:
        class_id = int(values[0])
    except ValueError:
        return f"class id {values[0]!r} is not an integer"
    if not 0 <= class_id < classes:
        return f"class id {class_id} is out of range: data.yaml names {classes} classes (ids 0-{classes - 1})"
    fields = (
        [f"{axis}{n}" for n in range(1, coordinates // 2 + 1) for axis in "xy"] if segment else _BOX_FIELDS
    )
    for field, text in zip(fields, values[1:], strict=True):
        try:
            value = float(text)
        except ValueError:
            return f"{field} {text!r} is not a number"
        if not math.isfinite(value) or not 0 <= value <= 1:
            return f"{field} {text} is out of range: coordinates are normalised to 0..1"
        if field in ("w", "h") and value <= 0:
            return f"box {field} {text} must be greater than 0"
    return None
