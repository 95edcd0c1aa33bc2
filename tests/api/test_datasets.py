from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from vtp.synthetic import make_yolo_detect_archive, make_yolo_segment_archive

from .conftest import MAX_DATASET_BYTES, ApiServer, Project, imagefolder_zip, upload_dataset


async def test_upload_zip_then_read_and_list(project: Project, api_server: ApiServer) -> None:
    content = imagefolder_zip(root="shapes/")
    response = await upload_dataset(project.client, content)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "shapes"
    assert body["format"] == "imagefolder"
    assert (body["version"], body["status"], body["created"]) == (1, "VALIDATING", True)
    assert body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    stored = api_server.settings.storage_dir / "datasets" / body["id"] / body["filename"]
    assert stored.read_bytes() == content

    shown = (await project.client.get(f"/v1/datasets/{body['id']}")).json()
    assert shown == {key: value for key, value in body.items() if key != "created"}
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


def yolo_zip(tmp_path: Path, members: dict[str, bytes]) -> bytes:
    path = tmp_path / "yolo.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("dataset_format", "make"),
    [("yolo-detect", make_yolo_detect_archive), ("yolo-segment", make_yolo_segment_archive)],
)
async def test_upload_yolo_formats(project: Project, tmp_path: Path, dataset_format: str, make) -> None:
    content = make(tmp_path, train=2, val=1, size=32).read_bytes()
    response = await upload_dataset(project.client, content, format=dataset_format)
    assert response.status_code == 201, response.text
    assert response.json()["format"] == dataset_format


@pytest.mark.parametrize(
    ("members", "missing"),
    [
        ({"data.yaml": b"names: [a]", "images/train/0.png": b"png"}, "labels/"),
        ({"ds/data.yaml": b"names: [a]", "ds/labels/train/0.txt": b"0 .5 .5 .1 .1"}, "images/"),
        ({"images/train/0.png": b"png", "labels/train/0.txt": b"0 .5 .5 .1 .1"}, "a data.yaml"),
        ({"train/a/0.png": b"png", "val/a/0.png": b"png"}, "a data.yaml and images/ and labels/"),
    ],
    ids=["no-labels", "no-images", "no-data-yaml", "an-imagefolder"],
)
async def test_yolo_archive_without_its_layout_is_refused(
    project: Project, tmp_path: Path, members: dict[str, bytes], missing: str
) -> None:
    response = await upload_dataset(project.client, yolo_zip(tmp_path, members), format="yolo-detect")
    assert response.status_code == 400
    assert response.json()["detail"]["message"].startswith(f"yolo-detect needs {missing} (layout: data.yaml")


async def test_yolo_layout_under_one_folder_or_split_first_is_accepted(
    project: Project, tmp_path: Path
) -> None:
    nested = {"ds/data.yaml": b"names: [a]", "ds/images/train/0.png": b"png", "ds/labels/train/0.txt": b""}
    split_first = {"data.yaml": b"names: [a]", "train/images/0.png": b"png", "train/labels/0.txt": b""}
    for members in (nested, split_first):
        response = await upload_dataset(project.client, yolo_zip(tmp_path, members), format="yolo-segment")
        assert response.status_code == 201, response.text
