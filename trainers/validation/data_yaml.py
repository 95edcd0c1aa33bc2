"""Reading an Ultralytics `data.yaml`: the class names and the image folders of each split, every path kept
inside the dataset (the same rules the Ultralytics trainer applies when it rewrites the file)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from contracts.datasets import YOLO_DATA_FILES
from trainers.validation.report import ProblemLog

SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "val")
# A data.yaml is a few lines; a huge one is a mistake or an attack on the parser.
MAX_YAML_BYTES = 1024 * 1024


@dataclass(frozen=True)
class DataYaml:
    file: PurePosixPath
    names: list[str]  # index = class id
    # Image folders per split, relative to the dataset root; a split may list several.
    splits: dict[str, list[PurePosixPath]]


def read_data_yaml(root: Path, problems: ProblemLog) -> DataYaml | None:
    """The parsed file, or None (with the problems logged) when it is missing or unusable. A split entry
    that is wrong is logged and left out; the other splits are still returned for checking."""
    file = next((PurePosixPath(name) for name in YOLO_DATA_FILES if (root / name).is_file()), None)
    if file is None:
        problems.add(
            "data.yaml", "missing data.yaml: a YOLO dataset needs it at its root (names, train, val)"
        )
        return None
    data = _load(root / file, file, problems)
    if data is None:
        return None
    names = _class_names(data, file, problems)
    base = _inside(PurePosixPath("."), data.get("path") or ".")
    if base is None:
        problems.add(file, f"path {data.get('path')!r} points outside the dataset: use a relative path")
        return None
    splits = {split: _split_folders(root, base, data, split, file, problems) for split in SPLITS}
    if names is None:
        return None
    return DataYaml(file, names, {split: folders for split, folders in splits.items() if folders})


def _load(path: Path, file: PurePosixPath, problems: ProblemLog) -> dict[Any, Any] | None:
    if path.stat().st_size > MAX_YAML_BYTES:
        problems.add(file, f"{file} is larger than {MAX_YAML_BYTES // 1024} KiB: it should hold a few lines")
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        problems.add(file, f"{file} is not UTF-8 text")
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.add(file, f"{file} is not valid YAML: {exc}", None if mark is None else mark.line + 1)
        return None
    if not isinstance(data, dict):
        problems.add(file, f"{file} must be a mapping (names:, train:, val:), not {type(data).__name__}")
        return None
    return data


def _class_names(data: dict[Any, Any], file: PurePosixPath, problems: ProblemLog) -> list[str] | None:
    names = data.get("names")
    if isinstance(names, list):
        by_id = dict(enumerate(names))
    elif isinstance(names, dict) and all(isinstance(key, int) and not isinstance(key, bool) for key in names):
        by_id = names
        if sorted(by_id) != list(range(len(by_id))):
            problems.add(file, f"names ids must run 0..{len(by_id) - 1} without gaps; found {sorted(by_id)}")
            return None
    else:
        problems.add(file, "names must list the classes: names: [cat, dog] or names: {0: cat, 1: dog}")
        return None
    if not by_id:
        problems.add(file, "names is empty: a dataset needs at least one class")
        return None
    bad = [class_id for class_id, name in by_id.items() if not isinstance(name, str | int) or name == ""]
    if bad:
        problems.add(file, f"class {bad[0]} has no usable name: names must be text")
        return None
    ordered = [str(by_id[class_id]) for class_id in range(len(by_id))]
    # The summary counts instances by name, so two ids may not share one.
    first_id: dict[str, int] = {}
    ok = True
    for class_id, name in enumerate(ordered):
        if first_id.setdefault(name, class_id) != class_id:
            problems.add(file, f"class name {name!r} is used by ids {first_id[name]} and {class_id}")
            ok = False
    nc = data.get("nc")
    if nc is not None and nc != len(ordered):
        problems.add(file, f"nc is {nc} but names lists {len(ordered)} classes")
        ok = False
    return ordered if ok else None


def _split_folders(
    root: Path,
    base: PurePosixPath,
    data: dict[Any, Any],
    split: str,
    file: PurePosixPath,
    problems: ProblemLog,
) -> list[PurePosixPath]:
    value = data.get(split)
    if value is None:
        if split in REQUIRED_SPLITS:
            problems.add(file, f"{split} is missing: data.yaml must name the {split} image folder")
        return []
    folders = []
    for entry in value if isinstance(value, list) else [value]:
        folder = _inside(base, entry)
        if folder is None:
            problems.add(file, f"{split} {entry!r} is not a relative path inside the dataset")
        elif (root / folder).is_file():
            problems.add(
                file,
                f"{split} {entry!r} is a file: point it at a folder of images (lists are not supported)",
            )
        elif not (root / folder).is_dir():
            problems.add(file, f"{split} {entry!r} does not exist: no folder {folder}/ in the dataset")
        else:
            folders.append(folder)
    return folders


def _inside(base: PurePosixPath, value: object) -> PurePosixPath | None:
    """`value` joined to `base`, or None unless it is relative text that stays inside the dataset. Lexical
    on purpose: extraction never creates links, so no path can leave the folder another way."""
    if not isinstance(value, str) or not value or PurePosixPath(value).is_absolute() or ":" in value:
        return None
    joined = posixpath.normpath(str(base / value.replace("\\", "/")))
    if joined == ".." or joined.startswith("../"):
        return None
    return PurePosixPath(joined)
