"""What every command shares: the `--data-dir` option, opening the API client, printing JSON."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from vtp.client import DEFAULT_DATA_DIR, ApiClient, load_config


def default_data_dir() -> Path:
    return Path(os.environ.get("VTP_DATA_DIR") or DEFAULT_DATA_DIR)


def common_options() -> argparse.ArgumentParser:
    """A parent parser, so `--data-dir` is accepted before or after the subcommand."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="platform data folder; the CLI reads client.env there (default: $VTP_DATA_DIR or ./.vtp)",
    )
    return parser


def open_client(args: argparse.Namespace) -> ApiClient:
    return ApiClient(load_config(args.data_dir))


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Aligned columns, never truncated (ids must stay copyable); rich styling only on a terminal."""
    console = Console()
    rows = [[str(value) for value in row] for row in rows]
    if console.is_terminal:
        table = Table(*headers, box=None)
        for column in table.columns:
            column.no_wrap = True
        for row in rows:
            table.add_row(*row)
        console.print(table, crop=False)
        return
    widths = [max(len(text) for text in column) for column in zip(headers, *rows, strict=False)]
    for row in [list(headers), *rows]:
        print("  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip())
