"""What counts as part of a dataset in an extracted folder: its files (minus the litter operating systems add
to archives), where its root is, which names are images."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

# Ultralytics' and torchvision's image suffixes that Pillow reads without plugins.
IMAGE_SUFFIXES = frozenset({".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})
# Folder names a format reads at its root: a lone top folder with one of these names is the dataset itself.
_LAYOUT_FOLDERS = frozenset({"train", "val", "test", "images", "labels"})
_LITTER_FILES = frozenset({"Thumbs.db", "desktop.ini"})


def is_litter(relative: PurePosixPath) -> bool:
    """macOS resource forks and Finder files, Windows thumbnails: added by the archiver, not the user."""
    return relative.name in _LITTER_FILES or any(
        part.startswith(".") or part == "__MACOSX" for part in relative.parts
    )


def is_image_name(relative: PurePosixPath) -> bool:
    return relative.suffix.lower() in IMAGE_SUFFIXES


def dataset_root(folder: Path) -> Path:
    """The folder itself, or its lone top folder: `shapes/train/...` and `train/...` both work."""
    entries = [entry for entry in folder.iterdir() if not is_litter(PurePosixPath(entry.name))]
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in _LAYOUT_FOLDERS:
        return entries[0]
    return folder


def dataset_files(root: Path) -> list[PurePosixPath]:
    """Every regular file under `root` but litter, relative, sorted by its POSIX path (a stable order for
    hashing whatever the file system returns)."""
    found = []
    for folder, _, names in os.walk(root):
        base = PurePosixPath(Path(folder).relative_to(root).as_posix())
        for name in names:
            relative = base / name
            if not is_litter(relative) and (root / relative).is_file():
                found.append(relative)
    return sorted(found, key=str)
