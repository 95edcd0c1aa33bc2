"""Hostile and broken archives are refused with a reason that names the problem, and nothing is written
outside the target folder."""

from __future__ import annotations

import io
import random
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.trainers.validation_archives import (
    imagefolder_members,
    inputs,
    outside,
    png,
    tar_member,
    write_tar,
    write_zip,
)
from trainers.validation import DatasetStatus, Limits, UnsafeArchive, validate_archive
from trainers.validation.archive import copy_counted
from trainers.validation.members import Member

OK_MEMBERS = {"train/a/ok.png": png(), "val/a/ok.png": png()}
TINY = Limits(max_total_bytes=64 * 1024, max_files=20, max_ratio=20, ratio_applies_above=4096)


def refusal(tmp_path: Path, archive: Path, limits: Limits = TINY) -> tuple[str | None, str]:
    """Validate `archive` into tmp_path/ds/x, check that it was refused and left nothing behind, and return
    the reported (file, message)."""
    target = tmp_path / "ds" / "x"
    report = validate_archive(archive, "imagefolder", limits=limits, workdir=target)
    assert report.status == DatasetStatus.REJECTED
    assert report.summary is None
    assert report.problem_count == 1
    assert outside(tmp_path, target) == []
    assert not target.exists() or list(target.iterdir()) == []
    return report.problems[0].file, report.problems[0].message


def write(kind: str, tmp_path: Path, members: dict[str, bytes] | list) -> Path:
    if kind == "zip":
        return write_zip(inputs(tmp_path) / "upload.zip", members)
    return write_tar(inputs(tmp_path) / "upload.tar.gz", members)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../evil.txt", "path traversal: '..' would place the member outside the dataset folder"),
        ("train/../../../evil.txt", "path traversal: '..' would place the member outside the dataset folder"),
        ("..\\..\\evil.txt", "path traversal: '..' would place the member outside the dataset folder"),
        ("C:/evil.txt", "Windows drive path: archive members must be relative to the dataset folder"),
        ("c:evil.txt", "Windows drive path: archive members must be relative to the dataset folder"),
    ],
)
def test_members_that_climb_out_are_refused(tmp_path, kind, member, reason):
    archive = write(kind, tmp_path, {**OK_MEMBERS, member: b"evil"})
    assert refusal(tmp_path, archive) == (member, reason)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_absolute_paths_are_refused(tmp_path, kind):
    member = f"{tmp_path}/evil.txt"  # would land right in tmp_path if honoured
    archive = write(kind, tmp_path, {**OK_MEMBERS, member: b"evil"})
    file, message = refusal(tmp_path, archive)
    assert message == "absolute path: archive members must be relative to the dataset folder"
    assert file == member


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (tarfile.SYMTYPE, "symbolic link: links can point outside the dataset folder"),
        (tarfile.LNKTYPE, "hard link: links can point outside the dataset folder"),
        (tarfile.CHRTYPE, "device, FIFO or other special file"),
        (tarfile.FIFOTYPE, "device, FIFO or other special file"),
    ],
)
def test_tar_links_and_special_files_are_refused(tmp_path, kind, reason):
    members = [
        tar_member("train/a/ok.png", png()),
        tar_member("train/a/link.png", kind=kind, link="/etc/passwd"),
    ]
    file, message = refusal(tmp_path, write_tar(inputs(tmp_path) / "upload.tar", members, mode="w"))
    assert file == "train/a/link.png"
    assert message.startswith(reason)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [(0o120777, "symbolic link: links can point"), (0o010644, "device, FIFO or other special file")],
)
def test_zip_links_and_special_files_are_refused(tmp_path, mode, reason):
    link = zipfile.ZipInfo("train/a/link.png")
    link.create_system = 3  # Unix: the high 16 bits of external_attr hold st_mode
    link.external_attr = mode << 16
    archive = inputs(tmp_path) / "upload.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train/a/ok.png", png())
        zf.writestr(link, "/etc/passwd")
    file, message = refusal(tmp_path, archive)
    assert file == "train/a/link.png"
    assert message.startswith(reason)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_duplicate_members_are_refused(tmp_path, kind):
    members = [("train/a/ok.png", png()), ("train/a/x.png", png()), ("train/a/./x.png", b"overwrite")]
    if kind != "zip":
        members = [tar_member(name, data) for name, data in members]
    file, message = refusal(tmp_path, write(kind, tmp_path, members))
    assert (file, message) == (
        "train/a/./x.png",
        "duplicate member: the archive holds this path more than once",
    )


def test_a_path_that_is_both_file_and_folder_is_refused(tmp_path):
    archive = write_zip(inputs(tmp_path) / "upload.zip", {"train/a": b"file", "train/a/x.png": png()})
    assert refusal(tmp_path, archive) == (
        "train/a/x.png",
        "conflicting member: this path is both a file and a folder",
    )


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archives_beyond_the_total_size_are_refused(tmp_path, kind):
    # Random bytes: incompressible, so the ratio limit stays out of the way.
    noise = random.Random(0).randbytes(40_000)
    members = {**OK_MEMBERS, "train/a/big.png": noise, "train/a/big2.png": noise}
    file, message = refusal(tmp_path, write(kind, tmp_path, members))
    assert (file, message) == (
        "train/a/big2.png",
        "too large: the archive unpacks to more than 64.0 KiB, the limit",
    )


def test_too_many_files_are_refused(tmp_path):
    members = {f"train/a/{n}.png": b"x" for n in range(TINY.max_files + 1)}
    file, message = refusal(tmp_path, write_zip(inputs(tmp_path) / "upload.zip", members))
    assert file == f"train/a/{TINY.max_files}.png"
    assert message == "too many entries: the archive holds more than 20 files and folders, the limit"


def test_a_zip_member_compressed_beyond_the_ratio_is_refused(tmp_path):
    archive = write_zip(
        inputs(tmp_path) / "upload.zip", {**OK_MEMBERS, "train/a/zeros.png": bytes(32_768)}, True
    )
    file, message = refusal(tmp_path, archive)
    assert file == "train/a/zeros.png"
    assert message.startswith("compression ratio ")
    assert message.endswith(":1 is beyond the limit of 20:1 (an archive bomb?)")


def test_a_compressed_tar_beyond_the_ratio_is_refused(tmp_path):
    archive = write_tar(
        inputs(tmp_path) / "upload.tar.gz", {**OK_MEMBERS, "train/a/zeros.png": bytes(32_768)}
    )
    file, message = refusal(tmp_path, archive)
    assert file == "train/a/zeros.png"
    assert message.startswith("compression ratio: the archive unpacks to ")
    assert message.endswith("times its size, beyond the limit of 20 (an archive bomb?)")


def test_a_zip_whose_header_understates_a_size_is_refused(tmp_path):
    """The declared size makes the ratio look harmless; the data does not match it."""
    archive = write_zip(inputs(tmp_path) / "upload.zip", {"train/a/zeros.png": bytes(1 << 20)}, deflate=True)
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):  # central and local header
        start = data.find(signature) + offset
        data[start : start + 4] = struct.pack("<I", 1000)
    archive.write_bytes(data)
    file, message = refusal(tmp_path, archive)
    assert file == "train/a/zeros.png"
    assert message.startswith("damaged archive: it cannot be read (Bad CRC-32")


def test_a_member_yielding_more_than_declared_is_cut_off():
    """Counted while extracting, whatever the archive library would let through."""
    out = io.BytesIO()
    with pytest.raises(
        UnsafeArchive, match=r"size mismatch: the member holds more data than its header declares"
    ):
        copy_counted(io.BytesIO(bytes(3 << 20)), out, Member("x.png", "file", 100), 0, 1 << 30)
    assert len(out.getvalue()) == 0
    with pytest.raises(UnsafeArchive, match=r"too large: the archive unpacks to more than 1\.0 MiB"):
        copy_counted(io.BytesIO(bytes(1 << 20)), out, Member("x.png", "file", 1 << 20), 1, 1 << 20)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("upload.tar.gz", "zip", "mismatched format: the file is named *.tar.gz but is a zip archive"),
        ("upload.zip", "tar.gz", "mismatched format: the file is named *.zip but is a tar.gz archive"),
        ("upload.zip", "text", "mismatched format: the file is named *.zip but is not a zip archive"),
        ("upload.bin", "text", "not an archive: the file is none of zip, tar, tar.gz, tar.bz2, tar.xz"),
        ("upload.zip", "truncated zip", "damaged archive: it cannot be read"),
    ],
)
def test_files_that_are_not_what_they_claim_are_refused(tmp_path, name, content, reason):
    source = inputs(tmp_path) / "source"
    source.parent.mkdir(parents=True)
    if content == "zip":
        data = write_zip(source, OK_MEMBERS).read_bytes()
    elif content == "tar.gz":
        data = write_tar(source, OK_MEMBERS).read_bytes()
    elif content == "truncated zip":
        data = write_zip(source, OK_MEMBERS).read_bytes()[:-30]
    else:
        data = b"train/a/ok.png\n" * 40
    archive = inputs(tmp_path) / name
    archive.write_bytes(data)
    file, message = refusal(tmp_path, archive)
    assert file is None
    assert message.startswith(reason)


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_every_tar_compression_extracts_by_its_content(tmp_path, mode):
    """Recognised by magic bytes: a name without a known suffix is fine."""
    archive = write_tar(inputs(tmp_path) / "dataset.archive", imagefolder_members(tmp_path), mode=mode)
    report = validate_archive(archive, "imagefolder", workdir=tmp_path / "ds" / "x")
    assert report.status == DatasetStatus.READY, report.problems
    assert outside(tmp_path, tmp_path / "ds" / "x") == []
