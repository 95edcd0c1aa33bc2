"""Exports: a job may ask for `"export": ["onnx", "torchscript"]`; the api passes it on in the spec and
shows it on the job, and refuses a format it does not know at `export`."""

from __future__ import annotations

import json

from nats.js import JetStreamContext

from contracts import subjects
from contracts.commands import SubmitJob

from .conftest import Project, job_body


async def published_spec(js: JetStreamContext) -> dict[str, object]:
    data = (await js.get_last_msg(subjects.COMMANDS_STREAM, subjects.SUBMIT_JOB)).data
    assert SubmitJob.model_validate_json(data)
    return dict(json.loads(data)["spec"])


async def test_a_job_asks_for_exports_each_once(project: Project, dataset: str, js: JetStreamContext) -> None:
    body = job_body(dataset, export=["onnx", "torchscript", "onnx"])
    response = await project.client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["export"] == ["onnx", "torchscript"]
    assert (await published_spec(js))["export"] == ["onnx", "torchscript"]
    assert (await project.client.get(f"/v1/jobs/{job['id']}")).json()["export"] == ["onnx", "torchscript"]


async def test_a_job_without_exports_publishes_the_spec_as_before(
    project: Project, dataset: str, js: JetStreamContext
) -> None:
    for body in (job_body(dataset), job_body(dataset, export=[])):
        response = await project.client.post("/v1/jobs", json=body)
        assert response.status_code == 202, response.text
        assert response.json()["export"] is None
        assert "export" not in await published_spec(js)


async def test_a_yolo_job_asks_for_exports(project: Project, yolo_dataset: str, js: JetStreamContext) -> None:
    yolo = {"framework": "ultralytics", "task": "detect", "model": "yolo11n.yaml", "hyperparameters": {}}
    response = await project.client.post("/v1/jobs", json=job_body(yolo_dataset, **yolo, export=["onnx"]))
    assert response.status_code == 202, response.text
    assert (await published_spec(js))["export"] == ["onnx"]


async def test_an_unknown_format_is_refused_at_export(project: Project, dataset: str) -> None:
    for export, location in [
        (["onnx", "tflite"], ["body", "export", 1]),
        ("onnx", ["body", "export"]),
    ]:
        response = await project.client.post("/v1/jobs", json=job_body(dataset, export=export))
        assert response.status_code == 422, response.text
        [problem] = response.json()["detail"]
        assert problem["loc"] == location
        assert problem["msg"] in ("Input should be 'onnx' or 'torchscript'", "Input should be a valid list")
