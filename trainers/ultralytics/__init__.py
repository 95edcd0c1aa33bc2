"""The Ultralytics YOLO trainer (detect, segment, classify): `python -m trainers.ultralytics`."""
