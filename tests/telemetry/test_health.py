"""The scheduler's and pool's small HTTP endpoint: metrics, liveness that notices a stalled loop, readiness
that names the dependency down."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY

from telemetry import metrics


def serve(health: metrics.Health) -> tuple[str, metrics.ThreadingWSGIServer]:
    server = metrics.serve(0, health, "127.0.0.1")
    return f"http://127.0.0.1:{server.server_port}", server


def test_probes_and_metrics() -> None:
    health = metrics.Health(stall_seconds=30)
    url, server = serve(health)
    try:
        metrics.POOL_RUNNERS.labels(pool="probe-test").set(3)
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/readyz").status_code == 200
        scraped = httpx.get(f"{url}/metrics").text
        assert 'vtp_pool_runners{pool="probe-test"} 3.0' in scraped
        assert "process_cpu_seconds_total" in scraped

        health.set_down("postgres", "connection refused")
        answer = httpx.get(f"{url}/readyz")
        assert (answer.status_code, answer.text.strip()) == (503, "postgres down: connection refused")
        assert httpx.get(f"{url}/healthz").status_code == 200  # a dependency down is no reason to restart
        health.set_down("postgres", None)
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert httpx.get(f"{url}/nothing").status_code == 404
    finally:
        server.shutdown()


def test_a_stalled_loop_is_not_live() -> None:
    health = metrics.Health(stall_seconds=0.0)
    url, server = serve(health)
    try:
        answer = httpx.get(f"{url}/healthz")
        assert answer.status_code == 503
        assert "stalled" in answer.text
        assert httpx.get(f"{url}/readyz").status_code == 503
    finally:
        server.shutdown()


def test_pool_depths_go_back_to_zero() -> None:
    depths = metrics.PoolDepths()
    depths.update({"depth-a": 2, "depth-b": 1})
    depths.update({"depth-b": 4})
    assert REGISTRY.get_sample_value("vtp_pool_queue_depth", {"pool": "depth-a"}) == 0
    assert REGISTRY.get_sample_value("vtp_pool_queue_depth", {"pool": "depth-b"}) == 4
