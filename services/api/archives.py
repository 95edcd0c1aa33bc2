"""Light structural checks of an uploaded dataset archive (.zip or .tar.gz), at upload: a fast pre-check that
refuses at once (400) what cannot be a dataset. The authoritative check is the dataset's validation job
(`trainers.validation`: safe extraction, images decode, labels parse), which makes it READY or REJECTED."""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Iterable
from typing import BinaryIO, Literal

from contracts.datasets import YOLO_DATA_FILES

ArchiveKind = Literal["zip", "tar.gz"]
SPLITS = ("train", "val")
_SUFFIXES: dict[str, ArchiveKind] = {".zip": "zip", ".tar.gz": "tar.gz", ".tgz": "tar.gz"}


class InvalidArchive(Exception):
    """The upload is not a readable .zip / .tar.gz, or lacks the layout its format requires."""


def archive_kind(file: BinaryIO) -> ArchiveKind:
    file.seek(0)
    magic = file.read(4)
    file.seek(0)
    if magic.startswith(b"PK\x03\x04") or magic.startswith(b"PK\x05\x06"):
        return "zip"
    if magic.startswith(b"\x1f\x8b"):
        return "tar.gz"
    raise InvalidArchive("the file is not a .zip or .tar.gz archive")


def check_name(filename: str | None, kind: ArchiveKind) -> None:
    """A name that promises another kind of archive (a tar.gz named `.zip`) is refused: the upload is not
    what its sender thinks it is."""
    lower = (filename or "").lower()
    named = next((named for suffix, named in _SUFFIXES.items() if lower.endswith(suffix)), None)
    if named is not None and named != kind:
        raise InvalidArchive(f"mismatched format: the file is named {filename!r} but is a {kind} archive")


def member_names(file: BinaryIO, kind: ArchiveKind) -> list[str]:
    """Names of the regular files in the archive."""
    file.seek(0)
    try:
        if kind == "zip":
            with zipfile.ZipFile(file) as archive:
                return [info.filename for info in archive.infolist() if not info.is_dir()]
        with tarfile.open(fileobj=file, mode="r:gz") as archive:
            return [member.name for member in archive.getmembers() if member.isfile()]
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidArchive(f"the {kind} archive cannot be read: {exc}") from exc
    finally:
        file.seek(0)


def _relative_paths(names: Iterable[str], top_level: Iterable[str]) -> list[list[str]]:
    """The members' path parts, relative to the dataset root: a lone top-level folder (`shapes/...`) is
    stepped into, as trainers do, unless it is itself part of the layout (`top_level`)."""
    paths = [[part for part in name.split("/") if part not in ("", ".")] for name in names]
    paths = [p for p in paths if p and not p[0].startswith("__MACOSX")]
    roots = {p[0] for p in paths}
    if len(roots) == 1 and all(len(p) > 1 for p in paths) and not roots & set(top_level):
        paths = [p[1:] for p in paths]
    return paths


def check_imagefolder(names: Iterable[str]) -> dict[str, list[str]]:
    """`train/<class>/<file>` and `val/<class>/<file>`, optionally under one top-level folder.

    Returns the classes found per split.
    """
    classes: dict[str, set[str]] = {split: set() for split in SPLITS}
    for parts in _relative_paths(names, SPLITS):
        if len(parts) >= 3 and parts[0] in classes:
            classes[parts[0]].add(parts[1])
    missing = [split for split in SPLITS if not classes[split]]
    if missing:
        raise InvalidArchive(
            "imagefolder needs class folders with files under "
            + " and ".join(f"{split}/" for split in missing)
            + " (layout: train/<class>/<image>, val/<class>/<image>)"
        )
    return {split: sorted(found) for split, found in classes.items()}


def check_yolo(names: Iterable[str], dataset_format: str) -> None:
    """A data.yaml at the root (optionally under one top-level folder) and files in an `images/` and a
    `labels/` folder: the Ultralytics layout, `images/train/...` or `train/images/...`. Whether the labels fit
    detection or segmentation, and what data.yaml says, the trainer checks."""
    paths = _relative_paths(names, YOLO_DATA_FILES)
    found = {
        "a data.yaml": any(len(p) == 1 and p[0] in YOLO_DATA_FILES for p in paths),
        "images/": any("images" in p[:-1] for p in paths),
        "labels/": any("labels" in p[:-1] for p in paths),
    }
    missing = [what for what, present in found.items() if not present]
    if missing:
        raise InvalidArchive(
            f"{dataset_format} needs {' and '.join(missing)} "
            "(layout: data.yaml, images/{train,val}/<image>, labels/{train,val}/<image>.txt)"
        )


def inspect(file: BinaryIO, dataset_format: str, filename: str | None = None) -> ArchiveKind:
    """Blocking: run it in a worker thread."""
    kind = archive_kind(file)
    check_name(filename, kind)
    names = member_names(file, kind)
    if dataset_format == "imagefolder":
        check_imagefolder(names)
    elif dataset_format in ("yolo-detect", "yolo-segment"):
        check_yolo(names, dataset_format)
    return kind
