"""Datasets a team can trust, end to end: every upload is validated by a job on the local pool (REST ->
scheduler -> runner -> `python -m trainers.validation` -> callbacks -> read model). Valid datasets of each
format become READY with their counts; hostile and malformed ones become REJECTED with a reason naming the
problem, or are refused at once (400) by the upload's pre-check; and storage keeps nothing of a dataset but
its archive (and its validation job's report)."""

from __future__ import annotations

import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import Platform, validated
from tests.trainers.validation_archives import (
    imagefolder_members,
    tar_member,
    write_tar,
    write_zip,
    yolo_members,
)
from vtp.cli import main
from vtp.client import ApiClient, ClientConfig

MIB = 1024 * 1024
# Outside every folder the platform uses: an archive member aimed here must never be written.
ABSOLUTE_TARGET = Path("/tmp") / f"vtp-e2e-evil-{uuid.uuid4().hex}.png"


# name: (format, what the first problem of the REJECTED dataset says)
REJECTED = {
    "traversal": ("imagefolder", "path traversal"),
    "absolute": ("imagefolder", "absolute path"),
    "symlink": ("imagefolder", "symbolic link"),
    "hardlink": ("imagefolder", "hard link"),
    "size-bomb": ("imagefolder", "too large"),
    "ratio-bomb": ("imagefolder", "compression ratio"),
    "not-an-image": ("imagefolder", "non-image file posing as image"),
    "segment-as-detect": ("yolo-detect", "a box needs 5"),
    "bad-labels": ("yolo-detect", "class id 7 is out of range"),
}
# name: (format, what the 400 of the upload's pre-check says)
REFUSED = {
    "imagefolder-as-yolo": ("yolo-detect", "yolo-detect needs a data.yaml"),
    "tar-named-zip": ("imagefolder", "mismatched format"),
    "not-an-archive": ("imagefolder", "not a .zip or .tar.gz"),
}
# name: (format, classes, images per split); e2e-detect comes through a signed upload URL, as the CLI sends
READY = {
    "e2e-imagefolder": ("imagefolder", 3, {"train": 6, "val": 3}),
    "e2e-detect": ("yolo-detect", 2, {"train": 3, "val": 2}),
    "e2e-segment": ("yolo-segment", 2, {"train": 3, "val": 2}),
}
SIGNED_UPLOADS = {"e2e-detect"}


def archives(folder: Path) -> dict[str, Path]:
    """Every case's archive by name: valid ones, then hostile and malformed variants of them."""
    images = imagefolder_members(folder)
    detect = yolo_members(folder, "yolo-detect")
    segment = yolo_members(folder, "yolo-segment")
    image = next(name for name in images if name.startswith("train/"))
    label = next(name for name in detect if name.startswith("labels/train/"))

    def tarred() -> list[tuple]:  # fresh members per archive: their data is read as they are written
        return [tar_member(name, data) for name, data in images.items()]

    symlink = tar_member("train/a/link.png", kind=tarfile.SYMTYPE, link="/etc/passwd")
    hardlink = tar_member("val/a/link.png", kind=tarfile.LNKTYPE, link=image)
    zipped: dict[str, dict[str, bytes]] = {
        "e2e-imagefolder": images,
        "e2e-detect": detect,
        "e2e-segment": segment,
        "traversal": {**images, "../evil.png": b"x"},
        "absolute": {**images, str(ABSOLUTE_TARGET): b"x"},
        "not-an-image": {**images, image: b"a text, not a PNG"},
        "segment-as-detect": segment,
        "bad-labels": {**detect, label: b"7 0.5 0.5 0.2 0.2\n"},
        "imagefolder-as-yolo": images,
    }
    found = {name: write_zip(folder / f"{name}.zip", members) for name, members in zipped.items()}
    for name, size in (("size-bomb", 17 * MIB), ("ratio-bomb", 4 * MIB)):  # zeros: deflated to almost nothing
        found[name] = write_zip(
            folder / f"{name}.zip", {**images, "train/a/big.png": bytes(size)}, deflate=True
        )
    found["symlink"] = write_tar(folder / "symlink.tar.gz", [*tarred(), symlink])
    found["hardlink"] = write_tar(folder / "hardlink.tar.gz", [*tarred(), hardlink])
    found["tar-named-zip"] = write_tar(folder / "tar-named-zip.zip", tarred())
    found["not-an-archive"] = folder / "notes.zip"
    found["not-an-archive"].write_text("meeting notes, not an archive")
    return found


def upload(platform: Platform, name: str, archive: Path) -> tuple[int, dict[str, Any]]:
    """Multipart, or through a signed upload URL; the status and body of the answer."""
    dataset_format = {**READY, **REJECTED, **REFUSED}[name][0]
    if name in SIGNED_UPLOADS:
        with ApiClient(ClientConfig(platform.url, platform.key, "test")) as api:
            return 201, api.upload_dataset(archive, name, dataset_format)
    with platform.client() as client, archive.open("rb") as file:
        response = client.post(
            "/v1/datasets",
            data={"name": name, "format": dataset_format},
            files={"file": (archive.name, file, "application/octet-stream")},
        )
    return response.status_code, response.json()


@pytest.fixture(scope="module")
def outcomes(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, dict]]:
    """Every case uploaded at once (the pool validates them side by side), then each as the API shows it once
    its validation has ended."""
    answers = {
        name: upload(platform, name, archive)
        for name, archive in archives(tmp_path_factory.mktemp("datasets")).items()
    }
    with platform.client() as client:
        return {
            name: (status, validated(client, body) if status in (200, 201) else body)
            for name, (status, body) in answers.items()
        }


def stored_files(platform: Platform) -> set[str]:
    root = platform.data_dir / "storage"
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def assert_only_its_archive_is_stored(platform: Platform, dataset: dict[str, Any]) -> None:
    mine = {
        name
        for name in stored_files(platform)
        if {dataset["id"], dataset["validation_job_id"]} & set(name.split("/"))
    }
    assert mine == {
        f"datasets/{dataset['id']}/{dataset['filename']}",
        f"jobs/{dataset['validation_job_id']}/artifacts/report.json",
    }
    assert not [name for name in stored_files(platform) if name.startswith("uploads/")]


@pytest.mark.parametrize("name", list(READY))
def test_a_valid_dataset_of_each_format_becomes_ready_with_its_counts(
    platform: Platform, outcomes: dict[str, tuple[int, dict]], name: str
) -> None:
    dataset_format, classes, splits = READY[name]
    status, dataset = outcomes[name]
    assert (status, dataset["status"], dataset["version"]) == (201, "READY", 1), dataset
    assert dataset["content_hash"].startswith("sha256:")
    summary = dataset["summary"]
    assert len(summary["classes"]) == classes
    assert {split: counts["images"] for split, counts in summary["splits"].items()} == splits
    if dataset_format != "imagefolder":
        assert sum(summary["splits"]["train"]["instances"].values()) >= splits["train"]
    assert_only_its_archive_is_stored(platform, dataset)


@pytest.mark.parametrize("name", list(REJECTED))
def test_a_hostile_or_malformed_archive_is_rejected_naming_the_problem(
    platform: Platform, outcomes: dict[str, tuple[int, dict]], name: str
) -> None:
    status, dataset = outcomes[name]
    assert (status, dataset["status"]) == (201, "REJECTED"), dataset
    assert dataset["problem_count"] >= 1
    assert REJECTED[name][1] in dataset["problems"][0]["message"], dataset["problems"]
    assert_only_its_archive_is_stored(platform, dataset)
    assert not ABSOLUTE_TARGET.exists()
    # Not trainable: a job on it is refused with its status.
    with platform.client() as client:
        body = {"framework": "timm", "task": "classify", "model": "resnet18", "dataset": f"{name}:1"}
        refused = client.post("/v1/jobs", json=body)
    assert refused.status_code == 409
    assert refused.json()["detail"]["status"] == "REJECTED"


@pytest.mark.parametrize("name", list(REFUSED))
def test_an_obviously_wrong_upload_is_refused_at_once(
    platform: Platform, outcomes: dict[str, tuple[int, dict]], name: str
) -> None:
    status, body = outcomes[name]
    assert status == 400
    assert REFUSED[name][1] in body["detail"]["message"]
    with platform.client() as client:
        assert client.get("/v1/datasets", params={"name": name}).json()["items"] == []


def test_the_cli_uploads_a_folder_waits_for_ready_and_the_same_content_again_is_the_same_version(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VTP_API_URL", platform.url)
    monkeypatch.setenv("VTP_API_KEY", platform.key)
    folder = tmp_path / "cli-shapes"
    for name, data in imagefolder_members(tmp_path).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    assert main(["datasets", "upload", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "dataset cli-shapes:1" in out
    assert "is READY" in out
    assert "train: 6 images" in out
    assert not list((platform.data_dir / "storage" / "uploads").rglob("*.*"))

    assert main(["datasets", "upload", str(folder)]) == 0
    again = capsys.readouterr().out
    assert "uploaded dataset cli-shapes:1" in again
    assert "the same version" in again
