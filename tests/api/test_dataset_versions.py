"""Datasets a team can trust: every upload is a new immutable version, validated by a job whose end moves it
to READY, REJECTED or FAILED; only READY datasets train; the same archive again is the same version; large
archives come through a signed upload URL. No scheduler runs here: `validated` plays the validation job."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from nats.js import JetStreamContext

from contracts import subjects
from contracts.commands import SubmitJob
from contracts.validation import DatasetValidationSpec
from services.common.storage import UrlSigner

from .conftest import ApiServer, Project, imagefolder_zip, job_body, upload_dataset, validated


async def upload(project: Project, content: bytes | None = None, **fields: Any) -> dict[str, Any]:
    response = await upload_dataset(project.client, content, **fields)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def submit(project: Project, dataset: str) -> Any:
    return await project.client.post("/v1/jobs", json=job_body(dataset))


async def test_a_new_dataset_is_validated_by_a_job_and_trains_only_once_ready(
    project: Project, js: JetStreamContext
) -> None:
    dataset = await upload(project)
    assert (dataset["status"], dataset["version"], dataset["problems"]) == ("VALIDATING", 1, [])
    message = await js.get_last_msg(subjects.COMMANDS_STREAM, subjects.SUBMIT_JOB)
    command = SubmitJob.model_validate_json(message.data)
    assert command.job_id == dataset["validation_job_id"]
    assert isinstance(command.spec, DatasetValidationSpec)
    assert (command.pool, command.max_attempts, command.name) == ("local", 3, "validate shapes:1")
    assert (command.dataset.id, command.dataset.format, command.dataset.version) == (
        dataset["id"],
        "imagefolder",
        1,
    )

    early = await submit(project, dataset["id"])
    assert early.status_code == 409, early.text
    assert early.json()["detail"]["status"] == "VALIDATING"
    assert "is VALIDATING, not READY" in early.json()["detail"]["message"]

    ready = await validated(js, project, dataset)
    assert ready["status"] == "READY"
    assert ready["content_hash"] == "sha256:" + "ab" * 32
    assert ready["summary"]["classes"] == ["circle", "square"]
    job = await submit(project, dataset["id"])
    assert job.status_code == 202, job.text
    assert (job.json()["dataset"], job.json()["dataset_version"]) == (dataset["id"], 1)
    # The validation job is a job like any other, listed when asked for.
    listed = (await project.client.get("/v1/jobs", params={"framework": "validation"})).json()["items"]
    assert [item["id"] for item in listed] == [dataset["validation_job_id"]]


async def test_a_rejected_dataset_shows_its_problems_and_cannot_train(
    project: Project, js: JetStreamContext
) -> None:
    problems = [
        {"file": "../evil.png", "line": None, "message": "path traversal: '..' would leave the folder"}
    ]
    verdict = {"status": "REJECTED", "summary": None, "problems": problems, "problem_count": 1}
    rejected = await validated(js, project, await upload(project), **verdict)
    assert (rejected["status"], rejected["problems"], rejected["problem_count"]) == ("REJECTED", problems, 1)
    refused = await submit(project, rejected["id"])
    assert refused.status_code == 409
    assert "found 1 problem(s)" in refused.json()["detail"]["message"]


async def test_a_failed_validation_fails_the_dataset_and_the_same_archive_may_be_uploaded_again(
    project: Project, js: JetStreamContext
) -> None:
    first = await upload(project)
    failed = await validated(js, project, first, failed="no heartbeat for 60 s")
    assert failed["status"] == "FAILED"
    assert failed["reason"] == "the validation job failed: no heartbeat for 60 s"
    again = await upload(project)
    assert (again["created"], again["version"], again["status"]) == (True, 2, "VALIDATING")


async def test_versions_per_name_and_the_same_archive_is_the_same_version(
    project: Project, api_server: ApiServer
) -> None:
    first = await upload(project)
    stored = set((api_server.settings.storage_dir / "datasets").iterdir())
    same = await upload_dataset(project.client)
    assert same.status_code == 200
    assert (same.json()["id"], same.json()["created"]) == (first["id"], False)
    assert set((api_server.settings.storage_dir / "datasets").iterdir()) == stored  # nothing new kept
    second = await upload(project, imagefolder_zip(root="v2/"))
    other_name = await upload(project, name="other")
    assert (second["version"], other_name["version"]) == (2, 1)

    async def shown(reference: str) -> Any:
        return (await project.client.get(f"/v1/datasets/{reference}")).json()["id"]

    assert await shown("shapes") == second["id"]
    assert await shown("shapes:1") == first["id"]
    assert (await project.client.get("/v1/datasets/shapes:3")).status_code == 404
    versions = (await project.client.get("/v1/datasets", params={"name": "shapes"})).json()["items"]
    assert [item["version"] for item in versions] == [2, 1]


async def test_a_job_names_its_dataset_by_id_name_version_or_name(
    project: Project, js: JetStreamContext
) -> None:
    first = await validated(js, project, await upload(project))
    second = await upload(project, imagefolder_zip(root="v2/"))

    async def trained_on(reference: str) -> tuple[int, Any]:
        response = await submit(project, reference)
        body = response.json()
        return response.status_code, body.get("dataset_version") if response.status_code == 202 else body

    assert await trained_on("shapes") == (202, 1)  # the newest READY version
    assert await trained_on("shapes:1") == (202, 1)
    status, refusal = await trained_on("shapes:2")
    assert (status, refusal["detail"]["status"]) == (409, "VALIDATING")
    await validated(js, project, second)
    assert await trained_on("shapes") == (202, 2)  # never a stale "newest"
    assert await trained_on(first["id"]) == (202, 1)
    status, missing = await trained_on("nothing:1")
    assert (status, missing["detail"][0]["loc"]) == (422, ["body", "dataset"])


async def test_a_name_must_be_usable_as_a_reference(project: Project) -> None:
    response = await upload_dataset(project.client, name="my data:v1")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]


def tar_gz(content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("train/a/0.png", "val/a/0.png"):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


async def test_an_archive_named_as_another_kind_is_refused_at_once(project: Project) -> None:
    response = await project.client.post(
        "/v1/datasets",
        data={"name": "shapes", "format": "imagefolder"},
        files={"file": ("shapes.zip", tar_gz(b"png"), "application/zip")},
    )
    assert response.status_code == 400
    assert "mismatched format" in response.json()["detail"]["message"]


class Uploads:
    """Plays the client's PUT to a signed upload URL (no events service runs here) by writing the object."""

    def __init__(self, project: Project, server: ApiServer) -> None:
        self.project, self.server = project, server

    async def put(self, content: bytes) -> str:
        response = await self.project.client.post("/v1/datasets/uploads")
        assert response.status_code == 201, response.text
        ticket = response.json()
        url = urlsplit(ticket["url"])
        key = url.path.removeprefix("/v1/storage/")
        assert key == f"uploads/{self.project.id}/{ticket['upload_id']}"
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        assert int(query["max_bytes"]) == ticket["max_bytes"] == self.server.settings.max_dataset_bytes
        signer = UrlSigner(self.server.settings.storage_signing_key, self.server.settings.events_url)
        signer.verify(key, "PUT", int(query["expires"]), query["signature"], max_bytes=ticket["max_bytes"])
        path = self.server.settings.storage_dir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return str(ticket["upload_id"])

    async def finalize(self, upload_id: str, **fields: Any) -> Any:
        body = {"name": "shapes", "format": "imagefolder", "upload_id": upload_id, **fields}
        return await self.project.client.post("/v1/datasets", json=body)

    def left(self) -> list[Path]:
        return list((self.server.settings.storage_dir / "uploads" / self.project.id).glob("*"))


async def test_a_signed_upload_becomes_a_dataset_once(
    project: Project, other_project: Project, api_server: ApiServer
) -> None:
    uploads = Uploads(project, api_server)
    content = imagefolder_zip()
    upload_id = await uploads.put(content)
    response = await uploads.finalize(upload_id, filename="shapes.zip")
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert (dataset["status"], dataset["filename"]) == ("VALIDATING", "shapes.zip")
    assert dataset["size"] == len(content)
    stored = api_server.settings.storage_dir / "datasets" / dataset["id"] / "shapes.zip"
    assert stored.read_bytes() == content
    assert uploads.left() == []

    again = await uploads.finalize(upload_id)
    assert again.status_code == 422
    assert again.json()["detail"][0]["loc"] == ["body", "upload_id"]
    duplicate = await uploads.finalize(await uploads.put(content))
    assert (duplicate.status_code, duplicate.json()["id"]) == (200, dataset["id"])
    assert uploads.left() == []

    theirs = await Uploads(other_project, api_server).put(content)
    assert (await uploads.finalize(theirs)).status_code == 422

    mislabelled = await uploads.put(tar_gz(b"png"))
    refused = await uploads.finalize(mislabelled, filename="shapes.zip")
    assert refused.status_code == 400
    assert "mismatched format" in refused.json()["detail"]["message"]
    assert uploads.left() == []

    missing_name = await project.client.post("/v1/datasets", json={"format": "imagefolder", "upload_id": "x"})
    assert missing_name.status_code == 422
    assert missing_name.json()["detail"][0]["loc"] == ["body", "name"]
