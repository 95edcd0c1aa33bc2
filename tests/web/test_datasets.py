"""Datasets in the browser: an archive uploaded with a progress bar straight to storage (a PUT to the signed
upload URL, which the events service serves to any origin), its validation followed to READY and its
summary; a REJECTED one's problems with file, line and message."""

from __future__ import annotations

import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page, Response, expect

from tests.e2e.helpers import Platform
from tests.web.pages import at_phone_width, nav, record, shot, sign_in
from vtp.synthetic import make_imagefolder_archive, make_yolo_detect_archive

VALIDATION_TIMEOUT_MS = 90_000


def upload(page: Page, archive: Path, name: str, dataset_format: str) -> None:
    nav(page, "Datasets")
    expect(page.get_by_role("heading", name="Upload a dataset")).to_be_visible()
    page.get_by_label("Archive").set_input_files(archive)
    page.get_by_label("Name").fill(name)
    page.get_by_label("Format").select_option(dataset_format)
    page.get_by_role("button", name="Upload").click()


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_upload_a_dataset_and_see_it_ready(page: Page, platform: Platform, tmp_path: Path) -> None:
    archive = make_imagefolder_archive(tmp_path / "browser-shapes.zip", train_per_class=8, val_per_class=3)
    with platform.client() as client:  # where signed upload URLs point: the events service
        storage = origin(client.post("/v1/datasets/uploads").json()["url"])
    assert storage != origin(platform.url)
    answers: list[tuple[str, str, int]] = []

    def seen(response: Response) -> None:
        answers.append((response.request.method, response.url, response.status))

    page.on("response", seen)
    sign_in(page, platform.key)
    upload(page, archive, "browser-shapes", "imagefolder")

    result = page.locator(".upload-result [data-dataset]")
    expect(result).to_have_attribute("data-status", "READY", timeout=VALIDATION_TIMEOUT_MS)
    summary = result.get_by_test_id("dataset-summary")
    expect(summary).to_contain_text("3 classes")
    expect(summary.locator("tr", has_text="train")).to_contain_text("24")
    expect(summary.locator("tr", has_text="val")).to_contain_text("9")
    # Straight to storage: the browser PUT the archive to the signed URL (another origin), and the API only
    # registered it; the page says which way it went.
    size = archive.stat().st_size
    puts = [(url, status) for method, url, status in answers if method == "PUT"]
    assert len(puts) == 1, answers
    put_url, put_status = puts[0]
    assert origin(put_url) == storage
    assert urlsplit(put_url).path.startswith("/v1/storage/uploads/")
    assert put_status == 201
    posts = [url for method, url, _ in answers if method == "POST" and urlsplit(url).path == "/v1/datasets"]
    assert len(posts) == 1, answers  # the registration (JSON), no multipart upload after it
    progress = page.get_by_test_id("upload-progress")
    expect(progress).to_have_attribute("data-through", "storage")
    expect(progress).to_contain_text("straight to storage")
    # The upload showed its progress, up to the whole archive.
    bar = progress.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuemax", str(size))
    expect(bar).to_have_attribute("aria-valuenow", str(size))
    # The list shows the new version, READY.
    row = page.locator("tr[data-name='browser-shapes']")
    expect(row.locator("[data-state=READY]")).to_be_visible()
    shot(page, "datasets-ready")
    at_phone_width(page, "datasets-phone")
    record("dataset upload", {"bytes": size, "through": "the signed URL"})


def test_a_rejected_dataset_lists_its_problems(page: Page, platform: Platform, tmp_path: Path) -> None:
    source = make_yolo_detect_archive(tmp_path / "source.zip")
    archive = tmp_path / "bad-labels.zip"
    with zipfile.ZipFile(source) as good, zipfile.ZipFile(archive, "w") as bad:
        label = next(n for n in good.namelist() if n.startswith("labels/train/") and n.endswith(".txt"))
        for member in good.namelist():
            bad.writestr(member, b"7 0.5 0.5 0.2 0.2\n" if member == label else good.read(member))
    sign_in(page, platform.key)
    upload(page, archive, "bad-labels", "yolo-detect")

    result = page.locator(".upload-result [data-dataset]")
    expect(result).to_have_attribute("data-status", "REJECTED", timeout=VALIDATION_TIMEOUT_MS)
    problems = result.get_by_test_id("dataset-problems")
    expect(problems.get_by_role("alert")).to_contain_text("Rejected")
    row = problems.locator("tbody tr").first
    expect(row.locator("td").nth(0)).to_have_text(label)
    expect(row.locator("td").nth(1)).to_have_text("1")
    expect(row.locator("td").nth(2)).to_contain_text("class id 7 is out of range")
    shot(page, "dataset-rejected")

    # Its own page (a link from the list) says the same.
    page.locator("tr[data-name='bad-labels']").get_by_role("link", name="v1").click()
    expect(page.get_by_test_id("dataset-problems")).to_contain_text("class id 7 is out of range")
