"""`vtp jobs logs ID [-f] [--tail N] [--stream S]`: a job's output (`GET /v1/jobs/{id}/logs`)."""

from __future__ import annotations

import argparse

from vtp.commands.common import open_client


def lines_count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("a number of lines (0 or more)")
    return int(text)


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Under `vtp jobs`."""
    logs = commands.add_parser("logs", parents=[common], help="print a job's output (stdout and stderr)")
    logs.add_argument("job_id", metavar="ID")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="then new lines as they come, until it ends"
    )
    logs.add_argument("--tail", type=lines_count, metavar="N", help="only the last N lines")
    logs.add_argument("--stream", choices=("stdout", "stderr"), help="only this stream's lines")
    logs.set_defaults(handler=print_logs)


def print_logs(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        for line in client.job_logs(args.job_id, tail=args.tail, follow=args.follow, stream=args.stream):
            print(line, flush=args.follow)
    return 0
