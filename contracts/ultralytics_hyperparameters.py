"""Which Ultralytics train arguments a job may set, and how to check them.

Pure Python on purpose (no ultralytics or torch import): every service imports contracts, and the API
refuses a bad job at submit time (422) with it instead of the trainer failing later. Names are Ultralytics'
own; the trainer owns everything about where and how training runs (paths, device, workers, resume, logging).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """The accepted values of one argument: a kind, optional inclusive bounds, or a closed set of choices."""

    kind: type
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def problem(self, value: object) -> str | None:
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind is str:
            if not isinstance(value, str):
                return "must be a string"
            if self.choices and value not in self.choices:
                return f"must be one of {', '.join(self.choices)}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {'an integer' if self.kind is int else 'a number'}"
        if self.kind is int and not (isinstance(value, int) or float(value).is_integer()):
            return "must be an integer"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}"
        return None


def _fraction() -> Rule:
    return Rule(float, 0.0, 1.0)


OPTIMIZERS = ("auto", "SGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSProp", "MuSGD")

ALLOWED: Mapping[str, Rule] = {
    # schedule and batch
    "epochs": Rule(int, 1, 10_000),
    "imgsz": Rule(int, 32, 4096),
    "batch": Rule(int, 1, 4096),
    "patience": Rule(int, 0, 10_000),
    "seed": Rule(int, 0, 2**31 - 1),
    "deterministic": Rule(bool),
    "fraction": Rule(float, 0.01, 1.0),
    "close_mosaic": Rule(int, 0, 10_000),
    "rect": Rule(bool),
    "single_cls": Rule(bool),
    "amp": Rule(bool),
    "multi_scale": _fraction(),
    "dropout": _fraction(),
    # optimiser
    "optimizer": Rule(str, choices=OPTIMIZERS),
    "lr0": Rule(float, 0.0, 10.0),
    "lrf": Rule(float, 0.0, 10.0),
    "momentum": _fraction(),
    "weight_decay": Rule(float, 0.0, 1.0),
    "warmup_epochs": Rule(float, 0.0, 10_000),
    "warmup_momentum": _fraction(),
    "warmup_bias_lr": Rule(float, 0.0, 10.0),
    "cos_lr": Rule(bool),
    "nbs": Rule(int, 1, 4096),
    # loss gains
    "box": Rule(float, 0.0, 1000.0),
    "cls": Rule(float, 0.0, 1000.0),
    "dfl": Rule(float, 0.0, 1000.0),
    # segmentation
    "overlap_mask": Rule(bool),
    "mask_ratio": Rule(int, 1, 64),
    # augmentation
    "hsv_h": _fraction(),
    "hsv_s": _fraction(),
    "hsv_v": _fraction(),
    "degrees": Rule(float, -180.0, 180.0),
    "translate": _fraction(),
    "scale": Rule(float, 0.0, 10.0),
    "shear": Rule(float, -180.0, 180.0),
    "perspective": Rule(float, 0.0, 0.001),
    "flipud": _fraction(),
    "fliplr": _fraction(),
    "bgr": _fraction(),
    "mosaic": _fraction(),
    "mixup": _fraction(),
    "cutmix": _fraction(),
    "copy_paste": _fraction(),
    "erasing": Rule(float, 0.0, 0.9),
    "auto_augment": Rule(str, choices=("randaugment", "autoaugment", "augmix")),
}

# Arguments the trainer sets itself: where files go, which device, how workers and resume work, what gets
# logged or downloaded. Named here so the refusal can say why rather than "unknown".
FORBIDDEN: frozenset[str] = frozenset(
    {
        "model",
        "data",
        "project",
        "name",
        "exist_ok",
        "save_dir",
        "save",
        "save_period",
        "device",
        "workers",
        "resume",
        "pretrained",
        "cache",
        "val",
        "plots",
        "verbose",
        "time",
        "profile",
        "freeze",
        "tracker",
        "mode",
        "task",
        "cfg",
    }
)


@dataclass(frozen=True)
class Problem:
    """Why one argument is refused. `kind`: unknown, platform (the trainer sets it) or invalid (its value)."""

    name: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"hyperparameters.{self.name}: {self.message}"


def problems(hyperparameters: Mapping[str, object]) -> list[Problem]:
    """Every reason the given arguments are refused (empty when all are fine)."""
    found = []
    for name, value in hyperparameters.items():
        rule = ALLOWED.get(name)
        if rule is None:
            if name in FORBIDDEN:
                found.append(Problem(name, "platform", "set by the platform, not by a job"))
            else:
                found.append(Problem(name, "unknown", "unknown Ultralytics train argument"))
            continue
        problem = rule.problem(value)
        if problem:
            found.append(Problem(name, "invalid", problem))
    return found


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def json_schema() -> dict[str, object]:
    """The allowed arguments as a JSON Schema object: what the published contract shows a consumer."""
    properties: dict[str, object] = {}
    for name, rule in ALLOWED.items():
        schema: dict[str, object] = {"type": _JSON_TYPES[rule.kind]}
        if rule.minimum is not None:
            schema["minimum"] = rule.minimum
        if rule.maximum is not None:
            schema["maximum"] = rule.maximum
        if rule.choices:
            schema["enum"] = list(rule.choices)
        properties[name] = schema
    return {"type": "object", "properties": properties, "additionalProperties": False}
