"""Pure checks of archive members, as the archive lists them: where each would land, what kind of entry it is,
and whether the archive as a whole stays within its `Limits`. No I/O: `archive.py` feeds members in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from trainers.validation.errors import UnsafeArchive
from trainers.validation.limits import Limits

MemberKind = Literal["file", "dir", "symlink", "hardlink", "special"]

_DRIVE = re.compile(r"^[A-Za-z]:")
_REFUSED_KINDS: dict[MemberKind, str] = {
    "symlink": "symbolic link: links can point outside the dataset folder, so archives may not contain them",
    "hardlink": "hard link: links can point outside the dataset folder, so archives may not contain them",
    "special": "device, FIFO or other special file: only regular files and folders are allowed",
}


@dataclass(frozen=True)
class Member:
    """One archive entry as its header declares it (headers can lie: extraction counts real bytes too)."""

    name: str
    kind: MemberKind
    size: int
    # Zip compresses each member on its own; tar.* compresses the whole stream, so members have none.
    compressed_size: int | None = None


def relative_path(name: str) -> PurePosixPath:
    """Where `name` lands, relative to the extraction folder; refuses any name that could leave it.
    Backslashes count as separators: Windows tools write them, and `..\\x` must not slip through."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute():
        raise UnsafeArchive("absolute path: archive members must be relative to the dataset folder", name)
    if path.parts and _DRIVE.match(path.parts[0]):
        raise UnsafeArchive(
            "Windows drive path: archive members must be relative to the dataset folder", name
        )
    if ".." in path.parts:
        raise UnsafeArchive("path traversal: '..' would place the member outside the dataset folder", name)
    return path


def human_bytes(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def too_large(limit: int, member: str) -> UnsafeArchive:
    return UnsafeArchive(
        f"too large: the archive unpacks to more than {human_bytes(limit)}, the limit", member
    )


class MemberChecker:
    """Checks members one at a time, in archive order, so a bomb is refused at the first header that crosses
    a limit instead of after the whole listing has been read.

    `stream_bytes` is the archive's size when its members have no compressed size of their own (tar.gz and
    friends): the ratio is then judged for the stream as a whole."""

    def __init__(self, limits: Limits, stream_bytes: int | None = None) -> None:
        self.limits = limits
        self.stream_bytes = stream_bytes
        self.entries = 0
        self.total_bytes = 0
        self.files: set[PurePosixPath] = set()
        self.folders: set[PurePosixPath] = set()

    def check(self, member: Member) -> PurePosixPath:
        """The member's relative path if it may be extracted; `UnsafeArchive` otherwise."""
        path = relative_path(member.name)
        if member.kind in _REFUSED_KINDS:
            raise UnsafeArchive(_REFUSED_KINDS[member.kind], member.name)
        self.entries += 1
        if self.entries > self.limits.max_files:
            raise UnsafeArchive(
                f"too many entries: the archive holds more than {self.limits.max_files} files and folders, "
                "the limit",
                member.name,
            )
        self._check_place(member, path)
        if member.kind == "file":
            self._check_size(member)
        return path

    def _check_place(self, member: Member, path: PurePosixPath) -> None:
        if not path.parts and member.kind == "file":
            raise UnsafeArchive("a file member has an empty name", member.name)
        if member.kind == "file" and path in self.files:
            raise UnsafeArchive("duplicate member: the archive holds this path more than once", member.name)
        conflict = path in self.files if member.kind == "dir" else path in self.folders
        if conflict or any(parent in self.files for parent in path.parents):
            raise UnsafeArchive("conflicting member: this path is both a file and a folder", member.name)
        (self.files if member.kind == "file" else self.folders).add(path)
        self.folders.update(path.parents)

    def _check_size(self, member: Member) -> None:
        limits = self.limits
        self.total_bytes += member.size
        if self.total_bytes > limits.max_total_bytes:
            raise too_large(limits.max_total_bytes, member.name)
        if member.compressed_size is not None:
            if _too_compressed(member.size, member.compressed_size, limits):
                ratio = member.size / max(member.compressed_size, 1)
                raise UnsafeArchive(
                    f"compression ratio {ratio:.0f}:1 is beyond the limit of {limits.max_ratio:.0f}:1 "
                    "(an archive bomb?)",
                    member.name,
                )
        elif self.stream_bytes is not None and _too_compressed(self.total_bytes, self.stream_bytes, limits):
            ratio = self.total_bytes / max(self.stream_bytes, 1)
            raise UnsafeArchive(
                f"compression ratio: the archive unpacks to {ratio:.0f} times its size, beyond the limit of "
                f"{limits.max_ratio:.0f} (an archive bomb?)",
                member.name,
            )


def _too_compressed(size: int, compressed: int, limits: Limits) -> bool:
    return size > limits.ratio_applies_above and size > limits.max_ratio * max(compressed, 1)
