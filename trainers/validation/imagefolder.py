"""Image-classification datasets: train/<class>/<image>, val/<class>/<image>, optionally test/<class>/<image>.
Both torchvision's ImageFolder and Ultralytics number classes by their sorted folder names, so every split
must hold the same class folders or the ids would not match."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from trainers.validation.images import image_problem
from trainers.validation.layout import IMAGE_SUFFIXES, is_image_name, is_litter
from trainers.validation.report import DatasetSummary, ImageFolderSplit, ProblemLog

SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "val")
_LAYOUT = "imagefolder needs train/<class>/<image> and val/<class>/<image>"
_IMAGE_LIST = ", ".join(sorted(IMAGE_SUFFIXES))


def check_imagefolder(root: Path, files: list[PurePosixPath], problems: ProblemLog) -> DatasetSummary:
    splits: dict[str, ImageFolderSplit] = {}
    for split in SPLITS:
        if (root / split).is_dir():
            splits[split] = _check_split(root, split, files, problems)
        elif split in REQUIRED_SPLITS:
            problems.add(f"{split}/", f"missing {split}/ folder: {_LAYOUT}")
    classes = sorted(splits["train"].images_per_class) if "train" in splits else []
    for split, stats in splits.items():
        if split != "train" and classes:
            _compare_classes(split, classes, sorted(stats.images_per_class), problems)
    other_files = sum(1 for file in files if file.parts[0] not in splits)
    return DatasetSummary(classes=classes, splits=dict(splits), other_files=other_files)


def _check_split(
    root: Path, split: str, files: list[PurePosixPath], problems: ProblemLog
) -> ImageFolderSplit:
    folders = sorted(
        entry.name
        for entry in (root / split).iterdir()
        if entry.is_dir() and not is_litter(PurePosixPath(entry.name))
    )
    stats = ImageFolderSplit(images_per_class=dict.fromkeys(folders, 0))
    for file in files:
        if file.parts[0] != split:
            continue
        if len(file.parts) < 3:
            problems.add(file, f"file outside a class folder: images go in {split}/<class>/")
        elif not is_image_name(file):
            kind = file.suffix or "no suffix"
            problems.add(
                file, f"unexpected file kind ({kind}): class folders hold images only ({_IMAGE_LIST})"
            )
        else:
            stats.images += 1
            stats.images_per_class[file.parts[1]] += 1
            problem = image_problem(root / file)
            if problem:
                problems.add(file, problem)
    if not folders:
        problems.add(f"{split}/", f"no class folders in {split}/: {_LAYOUT}")
    for name, count in stats.images_per_class.items():
        if count == 0:
            problems.add(f"{split}/{name}/", "class folder has no images")
    return stats


def _compare_classes(split: str, train: list[str], other: list[str], problems: ProblemLog) -> None:
    for name in sorted(set(train) - set(other)):
        problems.add(f"{split}/", f"class {name!r} is in train/ but has no folder in {split}/")
    for name in sorted(set(other) - set(train)):
        problems.add(
            f"{split}/{name}/", f"class {name!r} is not in train/: every split needs the same classes"
        )
