"""Inputs as recorded data: `(kind, JSON)` and back, so the inputs log can be replayed."""

from __future__ import annotations

from typing import Any

from contracts.commands import CancelJob, SubmitJob
from contracts.reports import REPORT_KINDS
from services.scheduler.core.model import Input, Tick

_KINDS: dict[str, type[Input]] = {
    "submit": SubmitJob,
    "cancel": CancelJob,
    "tick": Tick,
    **{f"report.{kind}": model for kind, model in REPORT_KINDS.items()},  # type: ignore[misc]
}
_NAMES = {model: kind for kind, model in _KINDS.items()}


def input_kind(command: Input) -> str:
    return _NAMES[type(command)]


def encode(command: Input) -> tuple[str, dict[str, Any]]:
    return input_kind(command), command.model_dump(mode="json")


def decode(kind: str, body: dict[str, Any]) -> Input:
    return _KINDS[kind].model_validate(body)
