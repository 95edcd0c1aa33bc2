"""`vtp datasets ...`: upload (a folder is zipped first; then wait for its validation), list, show."""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from contracts.datasets import DATASET_FORMATS
from vtp.client import ApiClient, CliError
from vtp.commands.common import open_client, print_table

POLL_SECONDS = 0.5
LISTED_PROBLEMS = 10
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
SPLITS = ("train", "val", "test")  # the order splits are shown in


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    datasets = subparsers.add_parser("datasets", help="upload, list and show datasets")
    commands = datasets.add_subparsers(dest="datasets_command", required=True, metavar="COMMAND")

    upload = commands.add_parser(
        "upload",
        parents=[common],
        help="upload a dataset (a folder, .zip or .tar.gz) and wait for its validation",
    )
    upload.add_argument("path", type=Path, metavar="DIR|ARCHIVE")
    upload.add_argument("--name", help="dataset name (default: the file or folder name)")
    upload.add_argument("--format", default="imagefolder", choices=DATASET_FORMATS)
    upload.add_argument("--no-wait", action="store_true", help="do not wait for the validation to finish")
    upload.set_defaults(handler=upload_dataset)

    listing = commands.add_parser("list", parents=[common], help="list datasets, newest first")
    listing.add_argument("--name", help="only this name's versions")
    listing.set_defaults(handler=list_datasets)

    show = commands.add_parser("show", parents=[common], help="show a dataset and what its validation found")
    show.add_argument("reference", metavar="ID|NAME[:VERSION]", help="NAME alone: its newest version")
    show.set_defaults(handler=show_dataset)


def zip_folder(folder: Path, workdir: Path) -> Path:
    """`folder/train/<class>/...` (or `folder/data.yaml`, `folder/images/...`) becomes an archive with the
    folder's content at its root."""
    return Path(shutil.make_archive(str(workdir / folder.name), "zip", root_dir=folder))


def default_name(path: Path) -> str:
    """The file or folder name without its archive suffix, in the characters a dataset name may hold."""
    stem = next((path.name[: -len(s)] for s in ARCHIVE_SUFFIXES if path.name.endswith(s)), path.name)
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", stem).strip("-_.")[:100] or "dataset"


def upload(client: ApiClient, path: Path, name: str, fmt: str, console: Console | None = None) -> dict:
    """Send the folder or archive (with a progress bar on a terminal); the dataset as the API answers."""
    console = console or Console()
    if not path.exists():
        raise CliError(f"no such file or folder: {path}")
    with tempfile.TemporaryDirectory(prefix="vtp-upload-") as workdir:
        archive = zip_folder(path, Path(workdir)) if path.is_dir() else path
        size = archive.stat().st_size
        columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            task = progress.add_task("upload", total=size)
            dataset = client.upload_dataset(archive, name, fmt, progress=lambda n: progress.advance(task, n))
    return dataset


def wait_for_validation(client: ApiClient, dataset: dict[str, Any], console: Console | None = None) -> dict:
    """Poll the dataset until its validation job has ended; the dataset then."""
    console = console or Console()
    with console.status(f"validating {label(dataset)} … (Ctrl-C stops waiting, not the validation)"):
        while dataset["status"] == "VALIDATING":
            time.sleep(POLL_SECONDS)
            dataset = client.get_dataset(dataset["id"])
    return dataset


def label(dataset: dict[str, Any]) -> str:
    return f"{dataset['name']}:{dataset['version']}"


def verdict(dataset: dict[str, Any], problems: int = LISTED_PROBLEMS) -> list[str]:
    """What the validation found, in lines: the counts of a READY dataset, the first problems of a REJECTED
    one, the reason of a FAILED one."""
    lines = [f"dataset {label(dataset)} ({dataset['id']}) is {dataset['status']}"]
    summary = dataset.get("summary") or {}
    if dataset["status"] == "READY":
        classes = summary.get("classes") or []
        if isinstance(classes, list):
            shown = ", ".join(classes[:10]) + (", …" if len(classes) > 10 else "")
            lines.append(f"  classes ({len(classes)}): {shown}")
        splits = summary.get("splits") or {}
        for split in sorted(
            splits, key=lambda name: (SPLITS.index(name) if name in SPLITS else len(SPLITS), name)
        ):
            lines.append(f"  {split}: {split_counts(splits[split])}")
    elif dataset["status"] == "REJECTED":
        lines.append(f"  {dataset['problem_count']} problem(s):")
        for problem in dataset["problems"][:problems]:
            where = problem.get("file") or "(the archive)"
            if problem.get("line"):
                where += f":{problem['line']}"
            lines.append(f"  {where}: {problem['message']}")
        if dataset["problem_count"] > problems:
            lines.append(
                f"  … and {dataset['problem_count'] - problems} more (vtp datasets show {dataset['id']})"
            )
    elif dataset.get("reason"):
        lines.append(f"  {dataset['reason']}")
    return lines


def split_counts(stats: dict[str, Any]) -> str:
    parts = [f"{stats.get('images', 0)} images"]
    if "labels" in stats:
        parts.append(f"{stats['labels']} labels")
        parts.append(f"{stats.get('background_images', 0)} background")
    if stats.get("instances"):
        parts.append(f"{sum(stats['instances'].values())} instances")
    return ", ".join(parts)


def upload_dataset(args: argparse.Namespace) -> int:
    name = args.name or default_name(args.path)
    with open_client(args) as client:
        dataset = upload(client, args.path, name, args.format)
        known = (
            "" if dataset.get("created", True) else " (this archive was uploaded before: the same version)"
        )
        print(f"uploaded dataset {label(dataset)} ({dataset['id']}){known}")
        if args.no_wait:
            return 0
        dataset = wait_for_validation(client, dataset)
    print("\n".join(verdict(dataset)))
    return 0 if dataset["status"] == "READY" else 1


def list_datasets(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        items = client.list_datasets(args.name)
    columns = ("id", "name", "version", "format", "status", "size", "created_at")
    print_table([c.upper() for c in columns], ([d.get(c, "") for c in columns] for d in items))
    return 0


def show_dataset(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        dataset = client.get_dataset(args.reference)
    found = verdict(dataset, problems=len(dataset["problems"]))
    details = [
        f"  format: {dataset['format']}",
        f"  archive: {dataset['filename']} ({dataset['size']} bytes, sha256 {dataset['sha256']})",
        f"  content hash: {dataset.get('content_hash') or '-'}",
        f"  validation job: {dataset.get('validation_job_id') or '-'}",
    ]
    print("\n".join([found[0], *details, *found[1:]]))
    return 0
