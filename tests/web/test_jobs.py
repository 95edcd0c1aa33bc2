"""Jobs in the browser: a timm job submitted from the form, its chart gaining a point per epoch until it
succeeds, its checkpoint downloaded; a 422 shown on the field it names; the list following states live and
a running job cancelled; two jobs compared; the live stream reconnecting with Last-Event-ID."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, Route, expect

from messaging.nats import connect, ensure_pool_consumer
from tests.e2e.helpers import Platform, job_request, submit, wait_for_state
from tests.web.pages import (
    at_phone_width,
    job_state,
    nav,
    record,
    seen_points,
    shot,
    sign_in,
    watch_points,
)
from vtp.embedded.nats_server import NatsServer

EPOCHS = 3
JOB_TIMEOUT_MS = 240_000


def test_submit_a_timm_job_watch_it_train_and_download_its_checkpoint(
    page: Page, browser: Browser, platform: Platform, dataset_id: str, tmp_path: Path
) -> None:
    sign_in(page, platform.key)
    nav(page, "Submit")
    expect(page.get_by_label("Dataset")).to_have_value(dataset_id)
    page.get_by_label("Model").fill("resnet18")
    page.get_by_label("Epochs").fill(str(EPOCHS))
    page.get_by_label("Image size (px)").fill("32")
    page.get_by_label("Batch size").fill("8")
    page.get_by_label("Learning rate").fill("0.001")
    page.get_by_label("Name").fill("from the form")
    shot(page, "submit")
    page.get_by_role("button", name="Submit job").click()

    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    watch_points(page, "val_loss")
    expect(page.get_by_role("heading", name="from the form")).to_be_visible()
    expect(job_state(page)).to_have_attribute("data-state", "SUCCEEDED", timeout=JOB_TIMEOUT_MS)

    # One point per epoch, each as its epoch ended (never two at once), every metric charted.
    assert [n for n in seen_points(page) if n] == list(range(1, EPOCHS + 1)), seen_points(page)
    for metric in ("train_loss", "val_loss", "val_accuracy"):
        expect(page.locator(f"svg[data-metric='{metric}'] circle.pt")).to_have_count(EPOCHS)
    expect(page.get_by_role("progressbar")).to_have_text(f"epoch {EPOCHS} of {EPOCHS}")
    expect(page.get_by_role("status").filter(has_text="Events:")).to_contain_text("complete")
    expect(page.locator(".timeline [data-type='job.succeeded']")).to_be_visible()
    expect(page.locator(".timeline [data-type='job.progress']")).to_have_count(EPOCHS)
    expect(page.get_by_test_id("attempt")).to_have_text("1 of 3")

    # The checkpoint, downloaded through the page, is the artifact the API holds: the browser followed a
    # signed URL of storage (a real download, not a copy in the page's memory), asked for with the key.
    with platform.client() as client:
        artifacts = {a["name"]: a for a in client.get(f"/v1/jobs/{job_id}/artifacts").json()}
    row = page.locator("tr[data-artifact='model.pt']")
    with (
        page.expect_request(lambda r: r.url.endswith(f"/v1/jobs/{job_id}/artifacts/model.pt/url")) as asked,
        page.expect_download() as download_info,
    ):
        row.get_by_role("button", name="Download model.pt").click()
    signed = asked.value.response()
    assert signed is not None
    assert signed.status == 200
    download = download_info.value
    assert download.url == signed.json()["url"]
    assert "/v1/storage/jobs/" in download.url
    assert not download.url.startswith(platform.url)
    assert download.suggested_filename == "model.pt"
    saved = tmp_path / "model.pt"
    download.save_as(saved)
    assert saved.stat().st_size == artifacts["model.pt"]["size"]
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == artifacts["model.pt"]["sha256"]
    shot(page, "job")
    at_phone_width(page, "job-phone")

    # The finished job's page loaded afresh, in a new tab with nothing cached (the key already in its
    # session storage) and again in this one: how long to the first chart, and how many bytes.
    cold = browser.new_context(base_url=platform.url)
    cold.add_init_script(f"sessionStorage.setItem('vtp.apiKey', {platform.key!r})")
    cold_ms = time_to_chart(cold.new_page(), job_id)
    cold.close()
    page.goto("about:blank")
    warm_ms = time_to_chart(page, job_id)
    timings = {"first_chart_ms_cold": cold_ms, "first_chart_ms_cached": warm_ms}
    record("job page", {**timings, **first_load(platform)})

    # "Train again" fills the form with this job's settings.
    page.get_by_role("link", name="Train again with these settings").click()
    expect(page.get_by_label("Epochs")).to_have_value(str(EPOCHS))
    expect(page.get_by_label("Image size (px)")).to_have_value("32")
    expect(page.get_by_label("Name")).to_have_value("from the form (again)")
    expect(page.get_by_label("Dataset")).to_have_value(dataset_id)


def time_to_chart(page: Page, job_id: str) -> int:
    """Milliseconds from navigating to the job's page to its first chart point on screen."""
    started = time.monotonic()
    page.goto(f"/jobs/{job_id}")
    expect(page.locator("svg[data-metric] circle.pt").first).to_be_visible()
    return round((time.monotonic() - started) * 1000)


def first_load(platform: Platform) -> dict[str, int]:
    """The dashboard's first load, HTML + scripts + styles, raw and as the api sends it (gzip)."""
    with httpx.Client(base_url=platform.url, headers={"Accept-Encoding": "gzip"}) as client:
        index = client.get("/")
        assets = [part.split('"')[0] for part in index.text.split('="/assets/')[1:]]
        raw = len(index.content)
        sent = int(index.headers.get("content-length", raw))
        with httpx.Client(base_url=platform.url) as plain:
            for asset in assets:
                raw += len(plain.get(f"/assets/{asset}").content)
        for asset in assets:
            with client.stream("GET", f"/assets/{asset}") as response:
                assert response.headers.get("content-encoding") == "gzip", asset
                sent += sum(len(chunk) for chunk in response.iter_raw())
    assert sent < 300_000, sent
    return {"first_load_bytes": raw, "first_load_gzip_bytes": sent, "assets": len(assets)}


def test_a_422_is_shown_on_the_field_it_names(page: Page, platform: Platform, dataset_id: str) -> None:
    sign_in(page, platform.key)
    page.goto("/submit")
    expect(page.get_by_label("Dataset")).to_have_value(dataset_id)
    page.get_by_label("Pool").fill("nowhere")
    page.get_by_role("button", name="Submit job").click()
    pool = page.locator("[data-field='pool']")
    expect(pool.locator(".field-error")).to_contain_text("pool 'nowhere' is not declared; known pools: local")
    expect(page.get_by_label("Pool")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Pool")).to_be_focused()

    page.get_by_label("Pool").fill("local")
    page.get_by_label("Epochs").fill("0")
    page.get_by_label("Further hyperparameters").fill("momentum=0.9")
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("[data-field='epochs'] .field-error")).to_contain_text("greater than or equal to 1")
    extra = page.locator("[data-field='extra'] .field-error")
    expect(extra).to_contain_text("momentum: Extra inputs are not permitted")
    expect(page.locator("[data-field='pool'] .field-error")).to_have_count(0)
    expect(page.get_by_test_id("submit-errors")).to_contain_text("Epochs")
    shot(page, "submit-422")
    expect(page).to_have_url(f"{platform.url}/submit")

    # Ultralytics: a model that is not a model YAML, on the model field.
    page.get_by_label("Framework").select_option("ultralytics")
    page.get_by_label("Task").select_option("classify")
    expect(page.get_by_label("Dataset")).to_have_value(dataset_id)
    page.get_by_label("Model").fill("resnet18")
    page.get_by_label("Epochs").fill("1")
    page.get_by_label("Further hyperparameters").fill("")
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("[data-field='model'] .field-error")).to_contain_text("not an Ultralytics model YAML")


def test_the_list_follows_a_job_live_and_a_running_job_is_cancelled(
    page: Page, platform: Platform, dataset_id: str
) -> None:
    sign_in(page, platform.key)
    expect(page.get_by_role("status").filter(has_text="Live states")).to_contain_text("live")
    job = submit(platform, job_request(dataset_id, name="long run", hyperparameters=hyper(0.001, epochs=500)))
    # The new job appears, then turns RUNNING, without a reload.
    row = page.locator(f"tr[data-job='{job['id']}']")
    expect(row).to_be_visible()
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "RUNNING", timeout=JOB_TIMEOUT_MS)
    expect(row.locator("td[data-label='Progress']")).to_contain_text("epoch", timeout=JOB_TIMEOUT_MS)

    row.get_by_role("link", name="long run").click()
    expect(page.locator("svg[data-metric='val_loss'] circle.pt").first).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(page.get_by_role("progressbar")).to_contain_text("of 500")
    page.get_by_role("button", name="Cancel job").click()
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(job_state(page)).to_have_attribute("data-state", "CANCELLED", timeout=60_000)
    expect(page.get_by_test_id("reason")).to_contain_text("cancelled by user")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    shot(page, "job-cancelled")

    nav(page, "Jobs")
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "CANCELLED")
    page.get_by_label("State").select_option("CANCELLED")
    expect(page.locator("tr[data-job]")).to_have_count(1)
    shot(page, "jobs")
    at_phone_width(page, "jobs-phone")


def declare_pool(nats: NatsServer, pool: str) -> None:
    """Declare a pool on the platform's nats-server (its dispatch consumer), as `vtp pools prepare POOL`
    does; in a thread, since the test's own holds Playwright's event loop."""

    async def declare() -> None:
        client = await connect(nats.url, "web-tests")
        try:
            await ensure_pool_consumer(client.jetstream(), pool)
        finally:
            await client.drain()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, declare()).result()


def test_a_waiting_job_says_where_and_why(
    page: Page, platform: Platform, nats_server: NatsServer, dataset_id: str
) -> None:
    # A pool declared with no runner behind it (scaled to zero): the job waits, and says so.
    declare_pool(nats_server, "web-idle")
    job = submit(platform, job_request(dataset_id, name="waits", pool="web-idle"))
    sign_in(page, platform.key)
    row = page.locator(f"tr[data-job='{job['id']}']")
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "QUEUED")
    expect(row.locator(".waiting")).to_contain_text("#1 in queue")
    expect(row.locator(".waiting")).to_contain_text("web-idle")
    # The API filters the list (the page shows what it answers).
    with page.expect_response(lambda r: "/v1/jobs?" in r.url and "pool=web-idle" in r.url) as filtered:
        page.get_by_label("Pool").select_option("web-idle")
    assert [item["id"] for item in filtered.value.json()["items"]] == [job["id"]]
    expect(page.locator("tr[data-job]")).to_have_count(1)

    row.get_by_role("link", name="waits").click()
    pending = page.get_by_test_id("pending")
    expect(pending).to_contain_text("Position 1 in the queue of pool web-idle")
    expect(pending).to_contain_text("web-idle")
    shot(page, "job-waiting")
    page.get_by_role("button", name="Cancel job").click()
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(job_state(page)).to_have_attribute("data-state", "CANCELLED", timeout=60_000)
    expect(pending).to_have_count(0)


def test_compare_two_jobs(page: Page, platform: Platform, dataset_id: str) -> None:
    jobs = [
        submit(platform, job_request(dataset_id, name=f"lr {lr}", hyperparameters=hyper(lr)))
        for lr in (0.001, 0.01)
    ]
    for job in jobs:
        wait_for_state(platform, job["id"], {"SUCCEEDED"})
    sign_in(page, platform.key)
    for job in jobs:
        page.locator(f"tr[data-job='{job['id']}']").get_by_role("checkbox").check()
    page.get_by_role("button", name="Compare selected (2)").click()

    expect(page.get_by_role("heading", name="Compare runs")).to_be_visible()
    chart = page.locator("svg[data-metric='val_loss']")
    expect(chart.locator("g[data-series]")).to_have_count(2)
    expect(chart.locator("circle.pt")).to_have_count(4)
    expect(page.locator(".legend").first).to_contain_text("lr 0.001")
    learning_rate = page.locator("tr[data-row='learning_rate']")
    expect(learning_rate).to_have_class("differs")
    expect(learning_rate.locator("td")).to_have_text(["0.001", "0.01"])
    expect(page.locator("tr[data-row='epochs']")).not_to_have_class("differs")
    expect(page.locator("tr[data-row='final:val_accuracy'] td")).to_have_count(2)
    shot(page, "compare")
    at_phone_width(page, "compare-phone")


def hyper(learning_rate: float, epochs: int = 2) -> dict[str, float | int]:
    return {"epochs": epochs, "batch_size": 8, "image_size": 32, "learning_rate": learning_rate}


# One event, then the stream ends, as when the server goes away; `retry:` sets the pause before the next try.
CUT_STREAM = (
    "retry: 1500\n\n: keep-alive\n\n"
    'id: 4242\nevent: job.log\ndata: {"job_id": "x", "type": "job.log", "state": "RUNNING", "attempt": 1, '
    '"version": 1, "time": "2026-01-01T00:00:00Z", "payload": {}}\n\n'
)


def test_the_live_list_reconnects_and_resumes_after_the_last_event(page: Page, platform: Platform) -> None:
    requests: list[str | None] = []

    def events(route: Route) -> None:
        requests.append(route.request.headers.get("last-event-id"))
        if len(requests) == 1:
            route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=CUT_STREAM)
        else:
            route.continue_()

    page.route("**/v1/events", events)
    sign_in(page, platform.key)
    badge = page.locator("[data-stream]").first
    expect(badge).to_have_attribute("data-stream", "reconnecting")
    expect(badge).to_contain_text("reconnecting")
    shot(page, "jobs-reconnecting")
    expect(badge).to_have_attribute("data-stream", "live")
    assert requests[:2] == [None, "4242"], requests
