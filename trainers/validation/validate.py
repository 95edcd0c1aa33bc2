"""From an uploaded archive (or an extracted folder) to a `ValidationReport`: extract safely, check the
format, hash the content. Expected failures become a REJECTED report, never an exception."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath

from contracts.datasets import DatasetFormat
from trainers.validation.archive import extract_archive
from trainers.validation.errors import ArchiveRefused
from trainers.validation.hashing import content_hash
from trainers.validation.imagefolder import check_imagefolder
from trainers.validation.layout import dataset_files, dataset_root
from trainers.validation.limits import DEFAULT_LIMITS, Limits
from trainers.validation.report import (
    DatasetStatus,
    DatasetSummary,
    Problem,
    ProblemLog,
    ValidationReport,
)
from trainers.validation.yolo import check_yolo

FormatCheck = Callable[[Path, list[PurePosixPath], ProblemLog], DatasetSummary]

FORMAT_CHECKS: dict[DatasetFormat, FormatCheck] = {
    "yolo-detect": partial(check_yolo, segment=False),
    "yolo-segment": partial(check_yolo, segment=True),
    "imagefolder": check_imagefolder,
}


def validate_archive(
    archive: Path,
    dataset_format: DatasetFormat,
    *,
    limits: Limits = DEFAULT_LIMITS,
    workdir: Path | None = None,
) -> ValidationReport:
    """Extract `archive` and validate it as `dataset_format`. With `workdir` (created if missing, must be
    empty) the extracted files stay there for the caller; without, they go to a temporary folder that is
    removed afterwards."""
    if workdir is not None:
        return _extract_and_validate(archive, dataset_format, limits, workdir)
    with tempfile.TemporaryDirectory(prefix="vtp-dataset-") as temporary:
        return _extract_and_validate(archive, dataset_format, limits, Path(temporary))


def validate_folder(root: Path, dataset_format: DatasetFormat) -> ValidationReport:
    """Validate an extracted dataset whose root is `root` (see `layout.dataset_root`)."""
    files = dataset_files(root)
    problems = ProblemLog()
    summary = FORMAT_CHECKS[dataset_format](root, files, problems)
    summary.files = len(files)
    summary.total_bytes = sum((root / file).stat().st_size for file in files)
    return ValidationReport(
        status=DatasetStatus.READY if problems.count == 0 else DatasetStatus.REJECTED,
        format=dataset_format,
        summary=summary,
        problems=problems.listed,
        problem_count=problems.count,
        content_hash=content_hash(root, files),
    )


def _extract_and_validate(
    archive: Path, dataset_format: DatasetFormat, limits: Limits, workdir: Path
) -> ValidationReport:
    try:
        folder = extract_archive(archive, workdir, limits)
    except ArchiveRefused as refused:
        return ValidationReport(
            status=DatasetStatus.REJECTED,
            format=dataset_format,
            summary=None,
            problems=[Problem(file=refused.member, message=refused.reason)],
            problem_count=1,
        )
    return validate_folder(dataset_root(folder), dataset_format)
