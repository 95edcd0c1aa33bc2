"""The web dashboard on the api's own origin: the static files `web/` builds (`npm run build` into
`web/dist`, which `scripts/setup.sh` runs where Node.js is present) served at `/`, the API staying under
`/v1`. Same origin, so the dashboard needs no CORS and its API key never leaves for another host.

A path that names no file (`/jobs/<id>`, `/datasets`) answers `index.html`, so the dashboard's own routes
load on a reload or from a bookmark; a path under `/v1` never does: a missing API route stays a JSON 404.
Without a build, `/` says how to make one rather than answer a bare 404.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

DIST = Path(__file__).resolve().parents[2] / "web" / "dist"

# Only same-origin scripts and styles; `connect-src` also allows other hosts, for the signed storage URL
# an upload goes to (local storage's events service, or S3).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Vite names every asset by its content hash: a new build has new names, so they may be kept for ever.
IMMUTABLE = "public, max-age=31536000, immutable"

NOT_BUILT = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Dashboard not built</title>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1>The web dashboard is not built</h1>
<p>Build it with Node.js 20 or later: <code>scripts/setup.sh</code> does (<code>npm ci</code> and
<code>npm run build</code> in <code>web/</code>), then restart the api and reload this page.
The API is at <a href="/docs">/docs</a>.</p></body></html>"""


class Dashboard(StaticFiles):
    """`web/dist` with the single-page fallback and the headers above."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or _is_api(path) or "." in path.rsplit("/", 1)[-1]:
                raise
            response = FileResponse(Path(str(self.directory)) / "index.html")
        if path.startswith("assets/") and response.status_code == 200:
            response.headers["Cache-Control"] = IMMUTABLE
        else:
            response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.update(SECURITY_HEADERS)
        return response


def _is_api(path: str) -> bool:
    return path == "v1" or path.startswith("v1/")


def mount(app: FastAPI, directory: Path = DIST) -> None:
    """Serve the dashboard at `/`. Call after the routers: a mount at `/` takes whatever they did not."""
    if (directory / "index.html").is_file():
        served: ASGIApp = GZipMiddleware(Dashboard(directory=directory, html=True), minimum_size=1024)
        app.mount("/", served, name="web")
        return

    async def not_built() -> HTMLResponse:
        return HTMLResponse(NOT_BUILT, status_code=503, headers={"Retry-After": "60"})

    app.add_api_route("/", not_built, methods=["GET"], include_in_schema=False)
