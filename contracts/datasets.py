"""Dataset formats: the names a dataset is uploaded under (`DatasetRef.format`), shared by the api (which
checks an upload's layout and whether a dataset fits a job) and the trainers (which read it)."""

from __future__ import annotations

from typing import Literal, get_args

DatasetFormat = Literal["imagefolder", "yolo-detect", "yolo-segment"]
DATASET_FORMATS: tuple[str, ...] = get_args(DatasetFormat)

# The description file of an Ultralytics dataset (yolo-detect, yolo-segment), by the names trainers look for.
YOLO_DATA_FILES = ("data.yaml", "data.yml", "dataset.yaml")
