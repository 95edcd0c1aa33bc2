"""Check a trained checkpoint the way a user would: `ultralytics.YOLO(path)` and `.val()` on the dataset."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from trainers.ultralytics.data import yolo_data


def validate_with_plain_ultralytics(weights: Path, dataset_archive: Path, work: Path) -> dict:
    """Load `weights` with `ultralytics.YOLO(path)` and run `.val()` on the dataset archive (extracted under
    `work`), in a child process: Ultralytics writes settings and changes logging at import, which this test
    process should not inherit. Returns the model's task and class names and the validation results."""
    with zipfile.ZipFile(dataset_archive) as archive:
        archive.extractall(work / "dataset")
    data = yolo_data(work / "dataset")
    script = f"""
import json
from pathlib import Path
from trainers.ultralytics import offline
offline.prepare(Path({str(work / "config")!r}))
offline.configure()
from ultralytics import YOLO
model = YOLO({str(weights)!r})
metrics = model.val(data={str(data)!r}, imgsz=64, batch=8, device="cpu", workers=0, plots=False,
                    project={str(work / "val")!r}, name="val", exist_ok=True)
print(json.dumps({{"task": model.task, "names": model.names, "results": metrics.results_dict}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])
