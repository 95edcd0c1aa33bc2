"""Browser tests of the web dashboard: Debian's Chromium, driven by Playwright for Python, against a real
`vtp up` (api, scheduler, events, the local pool training real timm jobs) on the session's nats-server and
Postgres, serving the dashboard built from web/.

Nothing here is skipped: without Chromium, Node.js or a build the suite fails saying what is missing
(`scripts/setup.sh` installs Chromium as root and builds the dashboard where Node.js is present)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from services.api import web
from tests.e2e.conftest import delete_streams
from tests.e2e.helpers import FAST_TIMERS, SMALL_VALIDATION_LIMITS, Platform, upload_dataset
from tests.web.pages import SCREENSHOTS
from vtp.embedded.nats_server import NatsServer
from vtp.embedded.ports import free_port
from vtp.launch import launch

CHROMIUM = Path(os.environ.get("VTP_CHROMIUM", "/usr/bin/chromium"))
WEB = web.DIST.parent
SOURCES = ("src", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json")


def _newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        path = WEB / name
        files = path.rglob("*") if path.is_dir() else [path]
        newest = max([newest, *(f.stat().st_mtime for f in files if f.is_file())])
    return newest


def build_dashboard() -> None:
    """Build web/dist when it is missing or older than its sources, so the tests run what the sources say."""
    index = web.DIST / "index.html"
    if index.is_file() and index.stat().st_mtime >= _newest_source():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            f"{index} is missing or stale and npm is not installed: install Node.js 20+, then run "
            "scripts/setup.sh (npm ci && npm run build in web/)"
        )
    if not (WEB / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, timeout=600)
    subprocess.run([npm, "run", "build"], cwd=WEB, check=True, timeout=600)


@pytest.fixture(scope="package")
def platform(
    session_dir: Path, nats_server: NatsServer, database_url_for: Callable[[str], str]
) -> Iterator[Platform]:
    """A fresh platform (as after a first `vtp up`) serving the dashboard: the streams other suites left
    are deleted first, its tables live in a database of their own."""
    build_dashboard()
    # In a thread of its own: Playwright's sync API (session-scoped: started first) holds this thread's loop.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, delete_streams(nats_server.url)).result()
    env = {
        **os.environ,
        **FAST_TIMERS,
        **SMALL_VALIDATION_LIMITS,
        "NATS_URL": nats_server.url,
        "NATS_MONITOR_URL": nats_server.monitor_url,
        "DATABASE_URL": database_url_for("vtp_web"),
    }
    launched = launch(session_dir / "web-platform", free_port(), env, session_dir / "web-vtp-up.log")
    platform = Platform(**vars(launched))
    yield platform
    assert platform.stop(30) == 0, "vtp up did not exit cleanly on SIGINT"


@pytest.fixture(scope="package")
def dataset_id(platform: Platform, session_dir: Path) -> str:
    """A READY imagefolder dataset (uploaded through the API) for the jobs the tests train."""
    from vtp.synthetic import make_imagefolder_archive

    return upload_dataset(platform, make_imagefolder_archive(session_dir / "web-shapes.zip"), "imagefolder")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: as root, apt-get install chromium (scripts/setup.sh does)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser, platform: Platform) -> Iterator[Page]:
    """A new tab of its own (its own session storage), at desktop width; console errors fail the test."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    viewport = {"width": 1280, "height": 900}
    context = browser.new_context(base_url=platform.url, viewport=viewport, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    yield page
    context.close()
    assert not errors, errors
