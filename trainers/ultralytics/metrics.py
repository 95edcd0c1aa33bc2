"""Ultralytics metric names -> the simple names our progress and done reports carry.

`metrics/mAP50-95(B)` -> `mAP50-95`, `metrics/precision(M)` -> `precision_mask`,
`metrics/accuracy_top1` -> `top1`, `train/box_loss` -> `train_box_loss`, `val/loss` -> `val_loss`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_SUFFIXES = {"B": "", "M": "_mask", "P": "_pose", "OBB": "_obb"}
_METRIC = re.compile(r"^metrics/(?P<name>[A-Za-z0-9_\-]+?)(?:\((?P<kind>[A-Z]+)\))?$")


def simple_name(key: str) -> str:
    match = _METRIC.match(key)
    if match:
        name, kind = match.group("name"), match.group("kind")
        name = name.removeprefix("accuracy_")
        return name + _SUFFIXES.get(kind or "B", f"_{(kind or '').lower()}")
    return re.sub(r"[^A-Za-z0-9_\-]+", "_", key).strip("_")


def simplify(values: Mapping[str, object]) -> dict[str, float]:
    """Rename and keep finite numbers only (progress metrics are floats; NaN does not travel as JSON)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[simple_name(key)] = round(number, 6)
    return out
