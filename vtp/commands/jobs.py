"""`vtp jobs ...`: submit, watch, list, show, cancel, events, artifacts, download."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, get_args

from contracts.exports import ExportFormat
from contracts.jobs import JobState
from vtp.client import ApiClient
from vtp.commands import job_logs
from vtp.commands.common import open_client, print_json, print_table
from vtp.watch import watch_job

HYPERPARAMETERS = ("epochs", "batch_size", "image_size", "learning_rate")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    jobs = subparsers.add_parser("jobs", help="submit and follow training jobs")
    commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")

    submit = commands.add_parser("submit", parents=[common], help="submit a training job")
    submit.add_argument("--model", required=True, help="timm model name, e.g. resnet18")
    submit.add_argument(
        "--dataset", required=True, help="a READY dataset: ID, NAME:VERSION or NAME (see `vtp datasets list`)"
    )
    submit.add_argument("--framework", default="timm")
    submit.add_argument("--task", default="classify")
    submit.add_argument("--epochs", type=int)
    submit.add_argument("--batch-size", type=int)
    submit.add_argument("--image-size", type=int)
    submit.add_argument("--learning-rate", type=float)
    add_submit_options(submit)
    submit.set_defaults(handler=submit_job)

    listing = commands.add_parser("list", parents=[common], help="list jobs, newest first")
    listing.add_argument("--state", type=str.upper, choices=[s.value for s in JobState])
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor")
    listing.set_defaults(handler=list_jobs)

    for name, handler, text in (
        ("show", show_job, "show one job as JSON"),
        ("cancel", cancel_job, "cancel a job"),
        ("watch", watch, "follow a job live until it ends"),
        ("events", job_events, "print a job's events (until it ends)"),
        ("artifacts", list_artifacts, "list a job's artifacts"),
        ("metrics", job_metrics, "print every metric of every epoch as a table"),
    ):
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("job_id", metavar="ID")
        command.set_defaults(handler=handler)

    job_logs.register(commands, common)

    download = commands.add_parser("download", parents=[common], help="download an artifact")
    download.add_argument("job_id", metavar="ID")
    download.add_argument("name", metavar="NAME")
    download.add_argument("-o", "--output", type=Path, help="file to write (default: ./NAME)")
    download.set_defaults(handler=download_artifact)


def add_submit_options(parser: argparse.ArgumentParser) -> None:
    """What every way of submitting a job takes besides the spec and the dataset (`jobs submit`, `train`)."""
    parser.add_argument("--name")
    parser.add_argument("--pool", default="local")
    parser.add_argument("--max-attempts", type=int)
    parser.add_argument(
        "--weights", help="start from these weights: an uploaded model's id, or job:JOB_ID/ARTIFACT"
    )
    parser.add_argument(
        "--export",
        action="append",
        choices=get_args(ExportFormat),
        help="also export the trained model to this format, as an artifact (repeatable)",
    )
    parser.add_argument("--idempotency-key", help="submitting again with the same key returns the same job")
    parser.add_argument("--watch", action="store_true", help="follow the job live until it ends")


def request_body(args: argparse.Namespace, spec: dict[str, Any], dataset: str) -> dict[str, Any]:
    """`POST /v1/jobs`: the spec, the dataset, and the options of `add_submit_options` that were given."""
    body: dict[str, Any] = {**spec, "dataset": dataset, "pool": args.pool}
    if args.name:
        body["name"] = args.name
    if args.max_attempts is not None:
        body["max_attempts"] = args.max_attempts
    if args.weights:
        body["weights"] = args.weights
    if args.export:
        body["export"] = args.export
    return body


def job_request(args: argparse.Namespace) -> dict[str, Any]:
    hyperparameters = {
        name: getattr(args, name) for name in HYPERPARAMETERS if getattr(args, name) is not None
    }
    spec = {
        "framework": args.framework,
        "task": args.task,
        "model": args.model,
        "hyperparameters": hyperparameters,
    }
    return request_body(args, spec, args.dataset)


def follow(client: ApiClient, job_id: str) -> int:
    view = watch_job(client, job_id)
    return 0 if view.state == JobState.SUCCEEDED else 1


def submit(args: argparse.Namespace, body: dict[str, Any]) -> int:
    """Submit `body`; with `--watch`, follow the job until it ends (exit 0 only when it succeeded)."""
    with open_client(args) as client:
        job = client.submit_job(body, idempotency_key=args.idempotency_key)
        print(f"submitted job {job['id']} ({job.get('state', '?')})")
        return follow(client, job["id"]) if args.watch else 0


def submit_job(args: argparse.Namespace) -> int:
    return submit(args, job_request(args))


def watch(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        return follow(client, args.job_id)


def list_jobs(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        page = client.list_jobs(state=args.state, limit=args.limit, cursor=args.cursor)
    print_table(
        ("ID", "NAME", "MODEL", "STATE", "ATTEMPT", "CREATED"),
        (
            (
                job.get("id"),
                job.get("name") or "",
                job.get("model") or "",
                job.get("state"),
                f"{job.get('attempt', '')}/{job.get('max_attempts', '')}",
                str(job.get("created_at") or "")[:19],
            )
            for job in page.get("items", [])
        ),
    )
    if page.get("next_cursor"):
        print(f"more: vtp jobs list --cursor {page['next_cursor']}")
    return 0


def show_job(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        print_json(client.get_job(args.job_id))
    return 0


def job_metrics(args: argparse.Namespace) -> int:
    """One row per epoch (as the last attempt to train it reported it), one column per metric."""
    with open_client(args) as client:
        history = client.get_job_metrics(args.job_id)
    names = sorted(history["series"])
    rows: dict[int, dict[str, Any]] = {}
    for name in names:
        for point in history["series"][name]:
            row = rows.setdefault(point["epoch"], {"attempt": point["attempt"]})
            row[name] = f"{point['value']:.6g}"
    headers = ["EPOCH", "ATTEMPT", *(name.upper() for name in names)]
    print_table(
        headers,
        ([epoch, row["attempt"], *(row.get(n, "-") for n in names)] for epoch, row in sorted(rows.items())),
    )
    for mark in history["attempts"]:
        if mark["resumed_from_epoch"] is not None:
            print(f"attempt {mark['attempt']} resumed from epoch {mark['resumed_from_epoch']}")
    return 0


def cancel_job(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        job = client.cancel_job(args.job_id)
    print(f"cancel requested for job {args.job_id}" + (f" ({job['state']})" if "state" in job else ""))
    return 0


def job_events(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        for event in client.events(args.job_id):
            print(f"{event.id}\t{event.event}\t{json.dumps(event.data, separators=(',', ':'))}", flush=True)
    return 0


def list_artifacts(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        artifacts = client.list_artifacts(args.job_id)
    print_table(
        ("NAME", "SIZE", "SHA256"), ((a.get("name"), a.get("size"), a.get("sha256")) for a in artifacts)
    )
    return 0


def download_artifact(args: argparse.Namespace) -> int:
    dest = args.output or Path(args.name)
    with open_client(args) as client:
        path = client.download_artifact(args.job_id, args.name, dest)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0
