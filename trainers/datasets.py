"""Fetching and unpacking a dataset archive from its signed URL. Extraction refuses any member that would land
outside the target folder (absolute paths, `..`, links), whatever the archive says."""

from __future__ import annotations

import shutil
import tarfile
import time
import zipfile
from pathlib import Path, PurePosixPath

import httpx

CHUNK = 1024 * 1024


class UnsafeArchive(Exception):
    """An archive member would escape the extraction folder, or is a link or device."""


class UnsupportedArchive(Exception):
    pass


def download(url: str, dest: Path, tries: int = 4) -> Path:
    """Stream `url` to `dest` (via a partial file), retrying transient failures briefly."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    for attempt in range(tries):
        try:
            with httpx.stream("GET", url, timeout=60.0, follow_redirects=True) as response:
                if response.status_code < 500:
                    response.raise_for_status()
                    with partial.open("wb") as out:
                        for chunk in response.iter_bytes(CHUNK):
                            out.write(chunk)
                    partial.replace(dest)
                    return dest
                problem: str = f"status {response.status_code}"
        except httpx.TransportError as exc:
            problem = str(exc)
        if attempt == tries - 1:
            raise RuntimeError(f"dataset download failed: {problem}")
        time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def _safe_target(root: Path, name: str) -> Path:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or (posix.parts and ":" in posix.parts[0]):
        raise UnsafeArchive(f"archive member escapes the dataset folder: {name!r}")
    target = (root / posix).resolve()
    if not target.is_relative_to(root):
        raise UnsafeArchive(f"archive member escapes the dataset folder: {name!r}")
    return target


def _extract_zip(archive: Path, root: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = _safe_target(root, info.filename)
            mode = (info.external_attr >> 16) & 0o170000
            if mode == 0o120000:
                raise UnsafeArchive(f"archive member is a symbolic link: {info.filename!r}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, CHUNK)


def _extract_tar(archive: Path, root: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            target = _safe_target(root, member.name)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tf.extractfile(member)
                if source is None:
                    raise UnsafeArchive(f"unreadable archive member: {member.name!r}")
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
            else:
                raise UnsafeArchive(f"archive member is a link or special file: {member.name!r}")


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a .zip or .tar(.gz) archive into `dest`; return the dataset root (a lone top folder is
    descended into, so `shapes/train/...` and `train/...` both work)."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, root)
    elif tarfile.is_tarfile(archive):
        _extract_tar(archive, root)
    else:
        raise UnsupportedArchive("the dataset archive is neither a zip nor a tar file")
    entries = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir() and not (root / "train").is_dir():
        return entries[0]
    return root
