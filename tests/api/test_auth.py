from __future__ import annotations

import httpx
import pytest

from .conftest import ApiServer, Project


async def test_healthz_and_docs_need_no_key(api_server: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api_server.url) as client:
        health = await client.get("/healthz")
        assert health.json() == {"status": "ok", "nats": "connected"}
        assert (await client.get("/docs")).status_code == 200
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert "/v1/jobs/{job_id}/events" in paths


@pytest.mark.parametrize(
    ("path", "method"),
    [("/v1/jobs", "GET"), ("/v1/jobs", "POST"), ("/v1/datasets", "GET"), ("/v1/events", "GET")],
)
@pytest.mark.parametrize("authorization", [None, "Bearer vtp_not-a-key", "Basic dXNlcjpwYXNz"])
async def test_v1_refuses_missing_or_bad_key(
    api_server: ApiServer, path: str, method: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(base_url=api_server.url, headers=headers) as client:
        response = await client.request(method, path, json={})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_other_projects_job_and_dataset_are_not_found(
    project: Project, other_project: Project, dataset: str, submit
) -> None:
    job = await submit()
    for path in (
        f"/v1/jobs/{job['id']}",
        f"/v1/jobs/{job['id']}/artifacts",
        f"/v1/jobs/{job['id']}/events",
        f"/v1/datasets/{dataset}",
    ):
        response = await other_project.client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
    cancel = await other_project.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancel.status_code == 404
    listed = await other_project.client.get("/v1/jobs")
    assert listed.json()["items"] == []
    # Nor can another project train on this project's dataset.
    response = await other_project.client.post(
        "/v1/jobs", json={"framework": "timm", "task": "classify", "model": "resnet18", "dataset": dataset}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "dataset"]
