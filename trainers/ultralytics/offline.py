"""Keeping Ultralytics offline. `prepare` must run before the first `import ultralytics`: the package reads
its environment and writes its settings file at import time. Its console output (banner, model summary,
each epoch's progress bars, validation) stays on: the runner captures it into the job's logs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

FONT = "Arial.ttf"


def _font_source() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def prepare(config_dir: Path) -> None:
    """Point Ultralytics at a settings folder of this job's own, with the font it would otherwise fetch."""
    fonts = config_dir / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    if not (fonts / FONT).exists():
        shutil.copyfile(_font_source(), fonts / FONT)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")


def configure() -> None:
    """After import: no sync, and no AMP check (on CUDA it would download weights)."""
    from ultralytics import settings
    from ultralytics.engine import trainer

    settings.update({"sync": False})
    trainer.check_amp = _amp_without_download  # type: ignore[attr-defined]


def _amp_without_download(model: Any) -> bool:
    """Ultralytics' AMP check runs a downloaded yolo26n.pt on CUDA; offline its own answer is "keep AMP on".
    Give that answer without trying (CPU and MPS: off, as in Ultralytics). `amp: false` still turns it off."""
    return next(model.parameters()).device.type not in {"cpu", "mps"}
