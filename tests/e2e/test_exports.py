"""End-to-end: a job that asks for exports lists them among its artifacts, and the ONNX model downloaded
through the API runs in onnxruntime."""

from __future__ import annotations

import time

import numpy as np
import onnxruntime

from tests.e2e.helpers import Platform, job_request, sse_events, submit


def test_a_jobs_onnx_export_downloads_and_runs(platform: Platform, dataset_id: str) -> None:
    started = time.monotonic()
    body = job_request(dataset_id, epochs=1, export=["onnx", "torchscript"])
    body["hyperparameters"]["image_size"] = 32
    job = submit(platform, body)
    assert job["export"] == ["onnx", "torchscript"]
    with platform.client() as client:
        events = list(sse_events(client, f"/v1/jobs/{job['id']}/events"))
        assert events[-1].event == "job.succeeded", [(e.event, e.data["payload"]) for e in events[-3:]]
        assert "export_failed" not in events[-1].data["payload"]["metrics"]
        listed = client.get(f"/v1/jobs/{job['id']}/artifacts").json()
        assert {"model.pt", "classes.json", "model.onnx", "model.torchscript"} <= {a["name"] for a in listed}
        classes = client.get(f"/v1/jobs/{job['id']}/artifacts/classes.json").json()
        download = client.get(f"/v1/jobs/{job['id']}/artifacts/model.onnx")
        assert download.status_code == 200

    session = onnxruntime.InferenceSession(download.content)
    images = np.random.default_rng(0).standard_normal((1, 3, 32, 32), dtype=np.float32)
    [logits] = session.run(["logits"], {"images": images})
    assert logits.shape == (1, len(classes))
    print(f"export job: {time.monotonic() - started:.1f}s")
