"""Safe extraction of an uploaded dataset archive (zip, tar, tar.gz/bz2/xz).

Two passes: the first reads only headers and refuses the archive before anything is written (escaping paths,
links, devices, duplicates, declared sizes beyond the limits); the second checks each member again as it
extracts it and counts the bytes really written, because headers can lie. Only regular files and folders are
ever created, so a path that is lexically inside the target folder is really inside it."""

from __future__ import annotations

import lzma
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Literal

from trainers.validation.errors import UnsafeArchive, UnsupportedArchive
from trainers.validation.limits import DEFAULT_LIMITS, Limits
from trainers.validation.members import Member, MemberChecker, MemberKind, too_large

ArchiveKind = Literal["zip", "tar", "tar.gz", "tar.bz2", "tar.xz"]
CHUNK = 1024 * 1024

# (offset, magic bytes): what the file is, whatever its name says.
_SIGNATURES: list[tuple[int, bytes, ArchiveKind]] = [
    (0, b"PK\x03\x04", "zip"),
    (0, b"PK\x05\x06", "zip"),  # an empty zip
    (0, b"\x1f\x8b", "tar.gz"),
    (0, b"BZh", "tar.bz2"),
    (0, b"\xfd7zXZ\x00", "tar.xz"),
    (257, b"ustar", "tar"),
]
_SUFFIXES: dict[str, ArchiveKind] = {
    ".zip": "zip",
    ".tar": "tar",
    ".tar.gz": "tar.gz",
    ".tgz": "tar.gz",
    ".tar.bz2": "tar.bz2",
    ".tbz2": "tar.bz2",
    ".tar.xz": "tar.xz",
    ".txz": "tar.xz",
}
# What the archive libraries raise on damaged or truncated input. OSError is left out on purpose: it is also
# what a full disk raises while writing; reads of member data catch it separately (see `_read_chunk`).
_DAMAGED = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, NotImplementedError)

Opener = Callable[[], IO[bytes] | None]


def archive_kind(archive: Path) -> ArchiveKind:
    """The archive's kind from its magic bytes. A name that promises another kind (a tar.gz called `.zip`) is
    refused: the upload is not what its sender thinks it is. Names without a known suffix are fine."""
    with archive.open("rb") as file:
        head = file.read(512)
    found = next((kind for offset, magic, kind in _SIGNATURES if head[offset:].startswith(magic)), None)
    suffix = next(
        (s for s in sorted(_SUFFIXES, key=len, reverse=True) if archive.name.lower().endswith(s)), None
    )
    if found is None:
        if suffix is not None:
            raise UnsupportedArchive(
                f"mismatched format: the file is named *{suffix} but is not a {_SUFFIXES[suffix]} archive "
                "(its first bytes match no archive format)"
            )
        raise UnsupportedArchive("not an archive: the file is none of zip, tar, tar.gz, tar.bz2, tar.xz")
    if suffix is not None and _SUFFIXES[suffix] != found:
        raise UnsupportedArchive(f"mismatched format: the file is named *{suffix} but is a {found} archive")
    return found


def extract_archive(archive: Path, dest: Path, limits: Limits = DEFAULT_LIMITS) -> Path:
    """Extract `archive` into `dest` (created if missing; it must be empty) and return `dest` resolved.
    Raises `UnsafeArchive` or `UnsupportedArchive` with the reason and the member; on refusal `dest` is left
    empty."""
    kind = archive_kind(archive)
    stream_bytes = None if kind in ("zip", "tar") else archive.stat().st_size
    with _reading():
        checker = MemberChecker(limits, stream_bytes)
        for member, _ in _members(archive, kind):
            checker.check(member)
    root = _empty_folder(dest)
    try:
        _write_members(archive, kind, root, MemberChecker(limits, stream_bytes), limits)
    except BaseException:
        _clear(root)
        raise
    return root


def _write_members(
    archive: Path, kind: ArchiveKind, root: Path, checker: MemberChecker, limits: Limits
) -> None:
    written = 0
    with _reading():
        for member, open_member in _members(archive, kind):
            # Checked again: the archive is read twice and must not get a member past the first pass.
            target = root / checker.check(member)
            if member.kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = open_member()
            if source is None:
                raise UnsupportedArchive("the archive member cannot be read", member.name)
            with source, target.open("xb") as out:
                written += copy_counted(source, out, member, written, limits.max_total_bytes)


def copy_counted(source: IO[bytes], out: IO[bytes], member: Member, written_before: int, limit: int) -> int:
    """Copy one member, refusing it once it yields more than its header declared or the archive's total
    passes `limit`."""
    copied = 0
    while chunk := _read_chunk(source, member):
        copied += len(chunk)
        if copied > member.size:
            raise UnsafeArchive(
                f"size mismatch: the member holds more data than its header declares ({member.size} bytes)",
                member.name,
            )
        if written_before + copied > limit:
            raise too_large(limit, member.name)
        out.write(chunk)
    return copied


def _read_chunk(source: IO[bytes], member: Member) -> bytes:
    try:
        return source.read(CHUNK)
    except (*_DAMAGED, OSError) as exc:
        raise _damaged(exc, member.name) from exc


@contextmanager
def _reading() -> Iterator[None]:
    try:
        yield
    except _DAMAGED as exc:
        raise _damaged(exc, None) from exc


def _damaged(exc: BaseException, member: str | None) -> UnsupportedArchive:
    detail = str(exc) or type(exc).__name__
    return UnsupportedArchive(f"damaged archive: it cannot be read ({detail})", member)


def _members(archive: Path, kind: ArchiveKind) -> Iterator[tuple[Member, Opener]]:
    """The archive's entries in order, each with a way to open its data (valid until the next entry)."""
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                yield _zip_member(info), partial(zf.open, info)
        return
    # Stream mode ("r|gz"): one sequential read, never a backward seek through compressed data.
    mode = "r|" if kind == "tar" else f"r|{kind.removeprefix('tar.')}"
    with tarfile.open(archive, mode) as tf:
        for info in tf:
            yield _tar_member(info), partial(tf.extractfile, info)


def _zip_member(info: zipfile.ZipInfo) -> Member:
    if info.flag_bits & 0x1:
        raise UnsupportedArchive(
            "encrypted member: the dataset cannot be read without a password", info.filename
        )
    # Unix zips keep st_mode in the high 16 bits; that is where a symlink or a device shows.
    mode = info.external_attr >> 16
    kind: MemberKind
    if info.is_dir():
        kind = "dir"
    elif stat.S_ISLNK(mode):
        kind = "symlink"
    elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        kind = "special"
    else:
        kind = "file"
    return Member(info.filename, kind, info.file_size, info.compress_size)


def _tar_member(info: tarfile.TarInfo) -> Member:
    kind: MemberKind
    if info.isdir():
        kind = "dir"
    elif info.isfile():
        kind = "file"
    elif info.issym():
        kind = "symlink"
    elif info.islnk():
        kind = "hardlink"
    else:
        kind = "special"
    return Member(info.name, kind, info.size)


def _empty_folder(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"the extraction folder {dest} is not empty")
    return dest.resolve()


def _clear(root: Path) -> None:
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
