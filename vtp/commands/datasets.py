"""`vtp datasets ...`: upload (a folder is zipped first) and list."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from contracts.datasets import DATASET_FORMATS
from vtp.client import ApiClient, CliError
from vtp.commands.common import open_client, print_table


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    datasets = subparsers.add_parser("datasets", help="upload and list datasets")
    commands = datasets.add_subparsers(dest="datasets_command", required=True, metavar="COMMAND")

    upload = commands.add_parser("upload", parents=[common], help="upload a dataset (zip archive or folder)")
    upload.add_argument("path", type=Path, metavar="PATH")
    upload.add_argument("--name", help="dataset name (default: the file or folder name)")
    upload.add_argument("--format", default="imagefolder", choices=DATASET_FORMATS)
    upload.set_defaults(handler=upload_dataset)

    listing = commands.add_parser("list", parents=[common], help="list datasets")
    listing.set_defaults(handler=list_datasets)


def zip_folder(folder: Path, workdir: Path) -> Path:
    """`folder/train/<class>/...` (or `folder/data.yaml`, `folder/images/...`) becomes an archive with the
    folder's content at its root."""
    return Path(shutil.make_archive(str(workdir / folder.name), "zip", root_dir=folder))


def upload(client: ApiClient, path: Path, name: str, fmt: str, console: Console | None = None) -> dict:
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


def upload_dataset(args: argparse.Namespace) -> int:
    name = args.name or args.path.name.removesuffix(".zip")
    with open_client(args) as client:
        dataset = upload(client, args.path, name, args.format)
    print(f"uploaded dataset {dataset['id']} ({name})")
    return 0


def list_datasets(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        items = client.list_datasets()
    columns = ("id", "name", "format", "size", "created_at")
    print_table([c.upper() for c in columns], ([d.get(c, "") for c in columns] for d in items))
    return 0
