"""`vtp train MODEL.yaml --data ID`: the short way to submit an Ultralytics YOLO job.

The task comes from the model YAML's name (`yolo11n.yaml` detect, `-seg` segment, `-cls` classify); any other
Ultralytics train argument goes in with `--set NAME=VALUE`. The API checks every argument (422 names it).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from contracts.ultralytics import not_a_model_yaml, task_of_model
from vtp.client import CliError
from vtp.commands.jobs import add_submit_options, request_body, submit


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    train = subparsers.add_parser(
        "train", parents=[common], help="train an Ultralytics YOLO model (the task follows the model YAML)"
    )
    train.add_argument(
        "model", metavar="MODEL.yaml", help="yolo11n.yaml (detect), yolo11n-seg.yaml, yolo11n-cls.yaml"
    )
    train.add_argument(
        "--data",
        required=True,
        metavar="DATASET",
        help="a READY dataset: ID, NAME:VERSION or NAME (see `vtp datasets list`)",
    )
    train.add_argument("--epochs", type=int)
    train.add_argument("--imgsz", type=int)
    train.add_argument("--batch", type=int)
    train.add_argument(
        "--set",
        dest="arguments",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other Ultralytics train argument, e.g. --set lr0=0.01 --set optimizer=AdamW (repeatable)",
    )
    add_submit_options(train)
    train.set_defaults(handler=train_model)


def _value(text: str) -> Any:
    """`0.01` -> 0.01, `true` -> True, `AdamW` -> "AdamW": JSON where it parses, else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def train_request(args: argparse.Namespace) -> dict[str, Any]:
    task = task_of_model(args.model)
    if task is None:
        raise CliError(not_a_model_yaml(args.model))
    hyperparameters: dict[str, Any] = {}
    for item in args.arguments:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise CliError(f"--set takes NAME=VALUE, not {item!r}")
        hyperparameters[name.strip()] = _value(value.strip())
    for name in ("epochs", "imgsz", "batch"):
        if getattr(args, name) is not None:
            hyperparameters[name] = getattr(args, name)
    spec = {"framework": "ultralytics", "task": task, "model": args.model, "hyperparameters": hyperparameters}
    return request_body(args, spec, args.data)


def train_model(args: argparse.Namespace) -> int:
    return submit(args, train_request(args))
