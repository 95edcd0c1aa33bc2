"""The api serves the built dashboard at `/`: its files, `index.html` for the dashboard's own routes, never
for `/v1` (a missing API route stays a JSON 404), and a page saying how to build it when it is not built."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.api import web
from services.common import http_errors


def app_serving(directory: Path) -> TestClient:
    app = FastAPI()
    http_errors.install(app)

    @app.get("/v1/things")
    def things() -> list[str]:
        return ["a"]

    web.mount(app, directory)
    return TestClient(app)


def built(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<!doctype html><script src="/assets/app-1.js"></script>')
    (tmp_path / "assets" / "app-1.js").write_text("console.log('dashboard');" * 100)
    return tmp_path


def test_the_dashboard_is_served_at_the_root_and_its_routes(tmp_path: Path) -> None:
    client = app_serving(built(tmp_path))
    for path in ("/", "/jobs/abc", "/datasets", "/compare?ids=a,b"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.text.startswith("<!doctype html>"), path
        assert response.headers["cache-control"] == "no-cache"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    asset = client.get("/assets/app-1.js", headers={"Accept-Encoding": "gzip"})
    assert asset.status_code == 200
    assert asset.headers["content-encoding"] == "gzip"
    assert "immutable" in asset.headers["cache-control"]
    assert client.get("/v1/things").json() == ["a"]


def test_the_api_keeps_its_404s(tmp_path: Path) -> None:
    client = app_serving(built(tmp_path))
    for path in ("/v1/nothing", "/v1", "/assets/gone.js", "/favicon.ico"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found", path
    assert client.post("/").status_code == 405


def test_without_a_build_the_root_says_how_to_make_one(tmp_path: Path) -> None:
    client = app_serving(tmp_path / "missing")
    response = client.get("/")
    assert response.status_code == 503
    assert "scripts/setup.sh" in response.text
    assert client.get("/jobs/abc").json()["error"] == "not_found"
