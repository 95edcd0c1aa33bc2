"""A content hash that identifies a dataset version: the same files give the same hash, whatever archive
they came in."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

CHUNK = 1024 * 1024


def content_hash(root: Path, files: Iterable[PurePosixPath]) -> str:
    """`sha256:<hex>` over each file's relative POSIX path and bytes, in sorted path order. Each path is
    followed by a NUL and the file's length, so bytes cannot shift between a name and a file, or between
    two files, without changing the hash."""
    digest = hashlib.sha256()
    for relative in sorted(files, key=str):
        path = root / relative
        digest.update(str(relative).encode() + b"\0" + path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"
