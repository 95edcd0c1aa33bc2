"""Starting weights: `POST /v1/models` takes a PyTorch file, and a job's `weights` must name an uploaded model
or an artifact of a job of the same project."""

from __future__ import annotations

import hashlib
import io
import zipfile

from nats.js import JetStreamContext

from contracts import subjects
from contracts.commands import SubmitJob
from contracts.jobs import EventType, JobState

from .conftest import Project, job_body, job_reaches


def torch_file() -> bytes:
    """What `torch.save` writes is a zip archive; its first bytes are all the api looks at."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("weights/data.pkl", b"tensors")
    return buffer.getvalue()


async def upload_model(project: Project, content: bytes, **fields: str):  # type: ignore[no-untyped-def]
    return await project.client.post(
        "/v1/models", data=fields, files={"file": ("resnet18-shapes.pt", content, "application/octet-stream")}
    )


async def test_an_uploaded_model_is_listed_and_read_by_its_project_only(
    project: Project, other_project: Project
) -> None:
    content = torch_file()
    response = await upload_model(project, content)
    assert response.status_code == 201, response.text
    model = response.json()
    assert model["name"] == "resnet18-shapes"
    assert (model["filename"], model["size"]) == ("resnet18-shapes.pt", len(content))
    assert model["sha256"] == hashlib.sha256(content).hexdigest()
    named = (await upload_model(project, content, name="start")).json()
    assert named["name"] == "start"

    listed = (await project.client.get("/v1/models")).json()["items"]
    assert [item["id"] for item in listed] == [named["id"], model["id"]]
    assert (await project.client.get(f"/v1/models/{model['id']}")).json() == model
    assert (await other_project.client.get(f"/v1/models/{model['id']}")).status_code == 404
    assert (await other_project.client.get("/v1/models")).json()["items"] == []


async def test_what_is_no_pytorch_file_is_refused(project: Project) -> None:
    response = await upload_model(project, b"just some bytes")
    assert response.status_code == 400
    assert "not a PyTorch file" in response.json()["detail"]
    missing = await project.client.post("/v1/models", data={"name": "x"}, files={"other": ("a", b"b")})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "file"]
    bad_name = await upload_model(project, torch_file(), name="no spaces please")
    assert bad_name.json()["detail"][0]["loc"] == ["body", "name"]


async def test_a_job_starts_from_a_model_of_its_project(
    project: Project, other_project: Project, dataset: str, js: JetStreamContext
) -> None:
    model = (await upload_model(project, torch_file())).json()
    response = await project.client.post("/v1/jobs", json=job_body(dataset, weights=model["id"]))
    assert response.status_code == 202, response.text
    assert response.json()["weights"] == model["id"]
    command = SubmitJob.model_validate_json(
        (await js.get_last_msg(subjects.COMMANDS_STREAM, subjects.SUBMIT_JOB)).data
    )
    assert command.spec.weights == model["id"]  # type: ignore[union-attr]

    foreign = (await upload_model(other_project, torch_file())).json()
    for weights, message in [
        (foreign["id"], f"model {foreign['id']} not found"),
        ("0" * 32, f"model {'0' * 32} not found"),
    ]:
        refused = await project.client.post("/v1/jobs", json=job_body(dataset, weights=weights))
        assert refused.status_code == 422
        assert refused.json()["detail"] == [
            {"loc": ["body", "weights"], "msg": message, "type": "unknown_weights"}
        ]
    malformed = await project.client.post("/v1/jobs", json=job_body(dataset, weights="../models/x"))
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["loc"] == ["body", "weights"]


async def test_a_job_starts_from_an_artifact_of_an_earlier_job(project: Project, submit, scheduler) -> None:
    earlier = await submit()
    events = scheduler(earlier)
    await events.start()
    await events.emit(
        EventType.ARTIFACT, JobState.RUNNING, name="model.pt", size=3, sha256="0" * 64,
        storage_key=f"jobs/{earlier['id']}/artifacts/model.pt",
    )  # fmt: skip
    await job_reaches(project.client, earlier["id"], version=4)

    job = await submit(weights=f"job:{earlier['id']}/model.pt")
    assert job["weights"] == f"job:{earlier['id']}/model.pt"
    missing = await project.client.post(
        "/v1/jobs", json=job_body(earlier["dataset"], weights=f"job:{earlier['id']}/best.pt")
    )
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["msg"] == f"job {earlier['id']} has no artifact 'best.pt'"
