"""Builders for the dataset-validation tests: small archives written member by member (hostile ones included),
variants of vtp.synthetic's datasets, and the check that a refusal wrote nothing outside its folder."""

from __future__ import annotations

import io
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from vtp.synthetic import make_imagefolder_archive, make_yolo_detect_archive, make_yolo_segment_archive

Members = dict[str, bytes]

MAKERS: dict[str, Callable[..., Path]] = {
    "yolo-detect": make_yolo_detect_archive,
    "yolo-segment": make_yolo_segment_archive,
}


def png(size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def write_zip(path: Path, members: Members | list[tuple[str, bytes]], deflate: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    items = members.items() if isinstance(members, dict) else members
    with warnings.catch_warnings():
        # Duplicate names are one of the hostile cases; zipfile warns while writing them.
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as archive:
            for name, data in items:
                archive.writestr(name, data)
    return path


def read_zip(path: Path) -> Members:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def tar_member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def write_tar(path: Path, members: Members | list[tuple], mode: str = "w:gz") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = (
        [tar_member(name, data) for name, data in members.items()] if isinstance(members, dict) else members
    )
    with tarfile.open(path, mode) as archive:
        for info, data in entries:
            archive.addfile(info, data)
    return path


def yolo_members(
    tmp_path: Path, dataset_format: str = "yolo-detect", train: int = 3, val: int = 2
) -> Members:
    """A tiny synthetic YOLO dataset (2 classes) as member name -> bytes, to edit into a variant."""
    archive = MAKERS[dataset_format](
        inputs(tmp_path) / "synthetic" / f"{dataset_format}.zip", train=train, val=val, size=32
    )
    return read_zip(archive)


def imagefolder_members(tmp_path: Path) -> Members:
    """3 classes, 2 train and 1 val image each."""
    archive = make_imagefolder_archive(
        inputs(tmp_path) / "synthetic" / "imagefolder.zip",
        classes=3,
        train_per_class=2,
        val_per_class=1,
        size=16,
    )
    return read_zip(archive)


def inputs(tmp_path: Path) -> Path:
    """Where a test writes its archives; everything else under `tmp_path` is the extraction's doing."""
    return tmp_path / "in"


def outside(tmp_path: Path, target: Path) -> list[Path]:
    """What exists under `tmp_path` other than the inputs, the target folder and the folders above it."""
    return sorted(
        path
        for path in tmp_path.rglob("*")
        if not path.is_relative_to(inputs(tmp_path))
        and not path.is_relative_to(target)
        and path not in target.parents
    )
