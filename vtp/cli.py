"""`vtp`: run the platform and use it from the command line.

Client commands read `VTP_API_URL` / `VTP_API_KEY`, else `<data-dir>/client.env` (written by `vtp up`).
Failures print one line (`error: ...`) and exit non-zero.
"""

from __future__ import annotations

import argparse
import sys

from vtp.client import CliError
from vtp.commands import datasets, demo, jobs, platform, pools, train
from vtp.commands.common import common_options, default_data_dir


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="vtp", description="Vision Training Platform: train vision models as jobs.", parents=[common]
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (platform, demo, datasets, jobs, train, pools):
        module.register(subparsers, common)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "data_dir"):
        args.data_dir = default_data_dir()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return int(args.handler(args))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
