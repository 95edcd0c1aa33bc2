"""End-to-end YOLO jobs: REST -> scheduler -> local pool -> runner -> `python -m trainers.ultralytics` ->
callbacks -> events -> SSE, with real (tiny) Ultralytics training on generated datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.helpers import Platform, SseEvent, sse_events, submit, upload_dataset
from tests.plain_ultralytics import validate_with_plain_ultralytics
from vtp.synthetic import make_yolo_detect_archive, make_yolo_segment_archive

BOX_METRICS = {"precision", "recall", "mAP50", "mAP50-95"}
YOLO_ARTIFACTS = {"best.pt", "last.pt", "results.csv", "args.yaml"}


def yolo_request(dataset: str, task: str, model: str, **hyperparameters: Any) -> dict[str, Any]:
    return {
        "framework": "ultralytics",
        "task": task,
        "model": model,
        "dataset": dataset,
        "pool": "local",
        "hyperparameters": hyperparameters,
    }


def run_to_the_end(platform: Platform, body: dict[str, Any]) -> tuple[dict[str, Any], list[SseEvent]]:
    """Submit, follow the job's events until it ends; the job as the API then shows it, and its events."""
    job = submit(platform, body)
    with platform.client() as client:
        events = list(sse_events(client, f"/v1/jobs/{job['id']}/events", timeout=300))
        shown = client.get(f"/v1/jobs/{job['id']}").json()
    assert events[-1].event == "job.succeeded", [(e.event, e.data["payload"]) for e in events[-3:]]
    assert shown["state"] == "SUCCEEDED"
    return shown, events


def progress_of(events: list[SseEvent]) -> list[dict[str, Any]]:
    return [event.data["payload"] for event in events if event.event == "job.progress"]


def test_detect_job_reports_box_metrics_per_epoch_and_its_best_pt_validates(
    platform: Platform, tmp_path: Path
) -> None:
    detect_archive = make_yolo_detect_archive(tmp_path / "detect.zip", train=16, val=4, size=64)
    dataset = upload_dataset(platform, detect_archive, "yolo-detect")
    body = yolo_request(dataset, "detect", "yolo11n.yaml", epochs=2, imgsz=64, batch=8, mosaic=0.0)
    job, events = run_to_the_end(platform, body)

    progress = progress_of(events)
    assert [(p["epoch"], p["epochs"]) for p in progress] == [(1, 2), (2, 2)]
    for payload in progress:
        assert BOX_METRICS <= set(payload["metrics"])
    assert BOX_METRICS <= set(job["final_metrics"])
    assert job["final_metrics"]["epochs"] == 2
    assert job["hyperparameters"] == body["hyperparameters"]

    with platform.client() as client:
        assert {a["name"] for a in client.get(f"/v1/jobs/{job['id']}/artifacts").json()} >= YOLO_ARTIFACTS
        download = client.get(f"/v1/jobs/{job['id']}/artifacts/best.pt")
    assert download.status_code == 200
    best = tmp_path / "best.pt"
    best.write_bytes(download.content)
    checked = validate_with_plain_ultralytics(best, detect_archive, tmp_path)
    assert checked["task"] == "detect"
    assert "metrics/mAP50-95(B)" in checked["results"]


def test_classify_job_reports_top1_and_top5_per_epoch(platform: Platform, dataset_id: str) -> None:
    body = yolo_request(dataset_id, "classify", "yolo11n-cls.yaml", epochs=2, imgsz=32, batch=8)
    job, events = run_to_the_end(platform, body)
    progress = progress_of(events)
    assert [p["epoch"] for p in progress] == [1, 2]
    for payload in progress:
        assert 0.0 <= payload["metrics"]["top1"] <= payload["metrics"]["top5"] <= 1.0
    assert {"top1", "top5"} <= set(job["final_metrics"])


def test_segment_job_trains_an_epoch(platform: Platform, tmp_path: Path) -> None:
    archive = make_yolo_segment_archive(tmp_path / "segment.zip", train=8, val=4, size=64)
    dataset = upload_dataset(platform, archive, "yolo-segment")
    body = yolo_request(dataset, "segment", "yolo11n-seg.yaml", epochs=1, imgsz=64, batch=8, mosaic=0.0)
    job, events = run_to_the_end(platform, body)
    [payload] = progress_of(events)
    assert {"mAP50", "mAP50_mask"} <= set(payload["metrics"])
    assert "mAP50_mask" in job["final_metrics"]
