"""Validation of uploaded dataset archives: safe extraction with limits, format checks (yolo-detect,
yolo-segment, imagefolder), a content hash, and a READY / REJECTED report.

    report = validate_archive(Path("upload.zip"), "yolo-detect")
    report.status, report.summary, report.problems, report.content_hash

Also a CLI: `python -m trainers.validation ARCHIVE --format FMT` prints the report as JSON."""

from contracts.datasets import DATASET_FORMATS, DatasetFormat
from trainers.validation.archive import archive_kind, extract_archive
from trainers.validation.errors import ArchiveRefused, UnsafeArchive, UnsupportedArchive
from trainers.validation.layout import dataset_root
from trainers.validation.limits import DEFAULT_LIMITS, Limits
from trainers.validation.report import (
    DatasetStatus,
    DatasetSummary,
    ImageFolderSplit,
    Problem,
    ValidationReport,
    YoloSplit,
)
from trainers.validation.validate import validate_archive, validate_folder

__all__ = [
    "DATASET_FORMATS",
    "DEFAULT_LIMITS",
    "ArchiveRefused",
    "DatasetFormat",
    "DatasetStatus",
    "DatasetSummary",
    "ImageFolderSplit",
    "Limits",
    "Problem",
    "UnsafeArchive",
    "UnsupportedArchive",
    "ValidationReport",
    "YoloSplit",
    "archive_kind",
    "dataset_root",
    "extract_archive",
    "validate_archive",
    "validate_folder",
]
