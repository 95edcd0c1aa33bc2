from __future__ import annotations

import hashlib
import io
import os
import tarfile

from .conftest import MAX_DATASET_BYTES, ApiServer, Project, imagefolder_zip, upload_dataset


async def test_upload_zip_then_read_and_list(project: Project, api_server: ApiServer) -> None:
    content = imagefolder_zip(root="shapes/")
    response = await upload_dataset(project.client, content)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "shapes"
    assert body["format"] == "imagefolder"
    assert body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    stored = api_server.settings.storage_dir / "datasets" / body["id"] / body["filename"]
    assert stored.read_bytes() == content

    assert (await project.client.get(f"/v1/datasets/{body['id']}")).json() == body
    listed = (await project.client.get("/v1/datasets")).json()["items"]
    assert [item["id"] for item in listed] == [body["id"]]


async def test_upload_tar_gz(project: Project) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("train/a/0.png", "train/b/0.png", "val/a/0.png", "val/b/0.png"):
            info = tarfile.TarInfo(name)
            info.size = 3
            archive.addfile(info, io.BytesIO(b"png"))
    response = await project.client.post(
        "/v1/datasets",
        data={"name": "tarred", "format": "imagefolder"},
        files={"file": ("shapes.tar.gz", buffer.getvalue(), "application/gzip")},
    )
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "shapes.tar.gz"


async def test_unknown_format_names_the_field(project: Project) -> None:
    response = await upload_dataset(project.client, format="coco")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "format"]


async def test_missing_file_names_the_field(project: Project) -> None:
    response = await project.client.post(
        "/v1/datasets", data={"name": "x", "format": "imagefolder"}, files={"other": ("a", b"a")}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]


async def test_not_an_archive_is_refused(project: Project) -> None:
    response = await upload_dataset(project.client, b"just some text, not an archive")
    assert response.status_code == 400
    assert "not a .zip or .tar.gz" in response.json()["detail"]["message"]


async def test_archive_without_val_split_is_refused(project: Project) -> None:
    response = await upload_dataset(project.client, imagefolder_zip(splits=("train",)))
    assert response.status_code == 400
    assert "val/" in response.json()["detail"]["message"]


async def test_too_large_is_refused_and_not_stored(project: Project, api_server: ApiServer) -> None:
    response = await upload_dataset(project.client, os.urandom(MAX_DATASET_BYTES + 100_000))
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    # Just over the limit (inside the multipart allowance): refused after reading.
    response = await upload_dataset(project.client, os.urandom(MAX_DATASET_BYTES + 10))
    assert response.status_code == 413
    assert (await project.client.get("/v1/datasets")).json()["items"] == []
