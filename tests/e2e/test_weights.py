"""End-to-end: weights uploaded with `POST /v1/models` start a job. A job trained for a few epochs gives its
`model.pt`; a job started from it, at a learning rate too small to learn anything, validates as well in its
first epoch as the first job did at its end, far better than a random initialisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.helpers import Platform, SseEvent, job_request, sse_events, submit

TINY_LEARNING_RATE = 1e-9  # the weights it starts from are what it validates


def run(platform: Platform, body: dict[str, Any]) -> list[SseEvent]:
    job = submit(platform, body)
    with platform.client() as client:
        events = list(sse_events(client, f"/v1/jobs/{job['id']}/events"))
    assert events[-1].event == "job.succeeded", [(e.event, e.data["payload"]) for e in events[-3:]]
    return events


def metrics(events: list[SseEvent]) -> list[dict[str, float]]:
    return [e.data["payload"]["metrics"] for e in events if e.event == "job.progress"]


def test_a_job_starts_from_uploaded_weights(platform: Platform, dataset_id: str, tmp_path: Path) -> None:
    trained = run(platform, job_request(dataset_id, epochs=3))
    job_id = trained[-1].data["job_id"]
    with platform.client() as client:
        download = client.get(f"/v1/jobs/{job_id}/artifacts/model.pt")
        assert download.status_code == 200
        uploaded = client.post("/v1/models", files={"file": ("shapes.pt", download.content)})
    assert uploaded.status_code == 201, uploaded.text
    model_id = uploaded.json()["id"]

    body = job_request(dataset_id, epochs=1, weights=model_id)
    body["hyperparameters"]["learning_rate"] = TINY_LEARNING_RATE
    started = run(platform, body)
    assert {"level": "info", "message": f"starting from weights {model_id}"} in [
        e.data["payload"] for e in started if e.event == "job.log"
    ]
    [first] = metrics(started)
    before, after = metrics(trained)[0], metrics(trained)[-1]
    print(f"trained epoch 1 {before}, epoch 3 {after}; started from its weights {first}")
    # Its training loss is measured while it trains, at a rate that changes nothing: the trained model's.
    assert first["train_loss"] < before["train_loss"] / 2
    assert first["val_loss"] < before["val_loss"]
    assert abs(first["val_loss"] - after["val_loss"]) < 0.25
    assert first["val_accuracy"] >= after["val_accuracy"] - 0.15
