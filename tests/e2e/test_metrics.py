"""The platform's metrics as an operator reads them: a real Prometheus (Debian's package) started from the
`prometheus.yml` that `vtp up` wrote, scraping every part; a finished job shows in PromQL; the scheduler's
and pool's probes answer; every metric the dashboards and alert rules name is exported by some part."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.deploy.observed_metrics import metric_names_used
from tests.e2e.helpers import Platform, job_request, submit
from vtp.embedded.ports import free_port

PARTS = ("vtp-api", "vtp-scheduler", "vtp-events", "vtp-pool")
# What a histogram's series are called, next to its own name.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


@pytest.fixture(scope="module")
def prometheus(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus on the config `vtp up` wrote; its URL once every part's target is up."""
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is missing: scripts/setup.sh installs it"
    config = platform.data_dir / "prometheus" / "prometheus.yml"
    address = f"127.0.0.1:{free_port()}"
    folder = tmp_path_factory.mktemp("prometheus")
    command = [
        binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={address}",
    ]  # fmt: skip
    with (folder / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{address}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (folder / "prometheus.log").read_text()[-3000:]
            health = _targets(url)
            if health and all(health.get(part) == "up" for part in PARTS):
                break
            assert time.monotonic() < deadline, f"targets not all up: {health}"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _targets(url: str) -> dict[str, str]:
    try:
        answer = httpx.get(f"{url}/api/v1/targets", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return {t["labels"]["job"]: t["health"] for t in answer["data"]["activeTargets"]}


def query(url: str, promql: str) -> list[dict]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def test_the_targets_file_names_one_target_per_part(platform: Platform) -> None:
    targets = json.loads((platform.data_dir / "prometheus" / "targets.json").read_text())
    assert sorted(t["labels"]["job"] for t in targets) == sorted(PARTS)
    config = (platform.data_dir / "prometheus" / "prometheus.yml").read_text()
    assert "alerts.yaml" in config, "the alert rules are loaded"


def test_a_finished_job_shows_in_promql(platform: Platform, dataset_id: str, prometheus: str) -> None:
    job = submit(platform, job_request(dataset_id, epochs=1))
    with platform.client() as client:
        deadline = time.monotonic() + 240
        while client.get(f"/v1/jobs/{job['id']}").json()["state"] != "SUCCEEDED":
            assert time.monotonic() < deadline, "the job did not succeed in time"
            time.sleep(0.5)
    promql = 'sum(vtp_jobs_finished_total{job="vtp-scheduler",state="succeeded",framework="timm"})'
    deadline = time.monotonic() + 30
    while not (result := query(prometheus, promql)) or float(result[0]["value"][1]) < 1:
        assert time.monotonic() < deadline, f"{promql} is {result}"
        time.sleep(1)
    submitted = query(prometheus, 'sum(vtp_jobs_submitted_total{job="vtp-api",framework="timm"})')
    assert float(submitted[0]["value"][1]) >= 1
    run_seconds = query(prometheus, 'sum(vtp_job_run_seconds_count{pool="local"})')
    assert float(run_seconds[0]["value"][1]) >= 1
    callbacks = query(prometheus, 'sum(vtp_callbacks_total{job="vtp-events",kind="heartbeat",code="200"})')
    assert float(callbacks[0]["value"][1]) >= 1
    epochs = query(prometheus, 'sum(vtp_epoch_seconds_count{framework="timm"})')
    assert float(epochs[0]["value"][1]) >= 1, "the trainer timed its epoch"


def test_the_scheduler_and_pool_probes_answer(platform: Platform) -> None:
    targets = json.loads((platform.data_dir / "prometheus" / "targets.json").read_text())
    for target in targets:
        if target["labels"]["job"] in ("vtp-scheduler", "vtp-pool"):
            address = target["targets"][0]
            for probe in ("healthz", "readyz"):
                answer = httpx.get(f"http://{address}/{probe}", timeout=5)
                assert answer.status_code == 200, (target, probe, answer.text)


def test_every_metric_the_dashboards_and_alerts_name_is_exported(prometheus: str) -> None:
    """Against each part's live scrape (HELP and TYPE lines name a labelled metric before its first
    sample), so renaming a metric in code without its dashboards and rules fails here."""
    exported: dict[str, str] = {}
    for target in httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]:
        text = httpx.get(target["scrapeUrl"], timeout=5).text
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
            exported[name] = kind
    missing = []
    for name in sorted(metric_names_used()):
        base = next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name)
        counter = name.removesuffix("_total")
        if name in exported or exported.get(base) == "histogram" or exported.get(counter) == "counter":
            continue
        missing.append(name)
    assert not missing, f"named by dashboards or alert rules, exported by no part: {missing}"
    assert "process_cpu_seconds_total" in exported or exported.get("process_cpu_seconds") == "counter"
