"""What the browser tests share: signing in, screenshots, reading the dashboard's live state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

# Test output, ignored by git: a screenshot of each page, and the measurements (first load, first chart).
SCREENSHOTS = Path(__file__).parent / "screenshots"


def sign_in(page: Page, key: str) -> None:
    page.goto("/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def nav(page: Page, name: str) -> None:
    """Follow a link of the main navigation."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def shot(page: Page, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def record(name: str, values: dict[str, Any]) -> None:
    """Add measurements to screenshots/measurements.json (read by whoever writes the closing note)."""
    path = SCREENSHOTS / "measurements.json"
    found = json.loads(path.read_text()) if path.exists() else {}
    found[name] = values
    path.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")


def watch_points(page: Page, metric: str) -> None:
    """Start recording, in the page, each distinct point count of a metric's chart as it changes."""
    page.evaluate(
        """(metric) => {
            window.__points = [];
            const read = () => {
                const svg = document.querySelector(`svg[data-metric="${metric}"]`);
                const n = svg ? svg.querySelectorAll("circle.pt").length : 0;
                if (window.__points[window.__points.length - 1] !== n) window.__points.push(n);
            };
            read();
            const all = { subtree: true, childList: true, attributes: true };
            new MutationObserver(read).observe(document.body, all);
        }""",
        metric,
    )


def seen_points(page: Page) -> list[int]:
    return list(page.evaluate("window.__points"))


def job_state(page: Page) -> Any:
    return page.locator(".summary [data-state]").first


def at_phone_width(page: Page, name: str) -> None:
    """The page at a phone's width: nothing wider than the screen, and a screenshot."""
    size = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)  # charts redraw at their new width
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    shot(page, name)
    if size:
        page.set_viewport_size(size)
    assert overflow <= 0, f"{name}: {overflow} px wider than a phone's screen"
