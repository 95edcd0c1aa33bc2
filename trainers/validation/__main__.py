"""`python -m trainers.validation ARCHIVE --format FMT`: validate a dataset archive and print the report as
JSON. Exit status 0 when READY, 1 when REJECTED (2 for a usage error).

Without arguments and with a trainer environment (`VTP_JOB_SPEC`), as the runner starts every framework's
trainer, it runs a dataset-validation job instead (`trainers.validation.job`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from contracts.datasets import DATASET_FORMATS
from trainers.validation.limits import DEFAULT_LIMITS, Limits
from trainers.validation.report import DatasetStatus
from trainers.validation.validate import validate_archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers.validation", description=__doc__)
    parser.add_argument(
        "archive", type=Path, help="the dataset archive (.zip, .tar, .tar.gz, .tar.bz2, .tar.xz)"
    )
    parser.add_argument("--format", dest="dataset_format", required=True, choices=DATASET_FORMATS)
    parser.add_argument("--max-total-bytes", type=int, default=DEFAULT_LIMITS.max_total_bytes)
    parser.add_argument("--max-files", type=int, default=DEFAULT_LIMITS.max_files)
    parser.add_argument("--max-ratio", type=float, default=DEFAULT_LIMITS.max_ratio)
    args = parser.parse_args(argv)
    if not args.archive.is_file():
        parser.error(f"no such file: {args.archive}")
    limits = Limits(max_total_bytes=args.max_total_bytes, max_files=args.max_files, max_ratio=args.max_ratio)
    report = validate_archive(args.archive, args.dataset_format, limits=limits)
    print(report.model_dump_json(indent=2))
    return 0 if report.status == DatasetStatus.READY else 1


def run_as_job() -> bool:
    return len(sys.argv) == 1 and "VTP_JOB_SPEC" in os.environ


if __name__ == "__main__":
    if run_as_job():
        from trainers.validation import job

        sys.exit(job.main())
    sys.exit(main())
