"""The result of validating a dataset archive: READY with a summary, or REJECTED with the problems found.
JSON-serialisable (pydantic v2) so the platform can store it and show it to the user as is."""

from __future__ import annotations

from enum import StrEnum
from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict, Field

from contracts.datasets import DatasetFormat

MAX_LISTED_PROBLEMS = 50


class DatasetStatus(StrEnum):
    READY = "READY"
    REJECTED = "REJECTED"


class Problem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str | None = Field(
        description="path relative to the dataset root, or the archive member as named in the archive; "
        "null when the problem is the archive as a whole"
    )
    line: int | None = Field(default=None, description="1-based line in `file`, where the problem has one")
    message: str


class YoloSplit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: int = 0
    labels: int = 0
    background_images: int = Field(default=0, description="images without a label file: allowed, counted")
    instances: dict[str, int] = Field(default_factory=dict, description="boxes or polygons per class name")


class ImageFolderSplit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: int = 0
    images_per_class: dict[str, int] = Field(default_factory=dict)


class DatasetSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    classes: list[str] = Field(default_factory=list, description="class names, in class-id order")
    splits: dict[str, YoloSplit | ImageFolderSplit] = Field(default_factory=dict)
    files: int = Field(default=0, description="files in the dataset, litter such as .DS_Store left out")
    total_bytes: int = 0
    other_files: int = Field(default=0, description="files outside what the format reads (READMEs, ...)")


class ValidationReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: DatasetStatus
    format: DatasetFormat
    summary: DatasetSummary | None = Field(description="null when the archive could not be extracted")
    problems: list[Problem] = Field(description=f"the first {MAX_LISTED_PROBLEMS} problems")
    problem_count: int
    content_hash: str | None = Field(
        default=None,
        description="'sha256:<hex>' over the sorted relative paths and bytes of the dataset's files",
    )


class ProblemLog:
    """Collects problems while a format is checked: keeps the first few, counts them all."""

    def __init__(self, keep: int = MAX_LISTED_PROBLEMS) -> None:
        self.keep = keep
        self.listed: list[Problem] = []
        self.count = 0

    def add(self, file: PurePosixPath | str | None, message: str, line: int | None = None) -> None:
        self.count += 1
        if len(self.listed) < self.keep:
            self.listed.append(Problem(file=None if file is None else str(file), line=line, message=message))
