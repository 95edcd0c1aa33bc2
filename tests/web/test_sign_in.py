"""Signing in with an API key: a wrong key is refused, a right one is kept in the tab's session storage and
never put into a URL; the keyboard alone gets through."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import Platform
from tests.web.pages import shot


def test_a_wrong_key_is_refused(page: Page) -> None:
    page.goto("/")
    page.get_by_label("API key").fill("vtp_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("The API refused this key: invalid API key")
    shot(page, "sign-in-refused")
    assert page.evaluate("sessionStorage.length") == 0
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    expect(page.get_by_label("API key")).to_be_focused()


def test_signing_in_keeps_the_key_in_this_tab_only(page: Page, platform: Platform, browser: Browser) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto("/")
    expect(page.get_by_label("API key")).to_be_focused()
    # Keyboard only: type the key, Enter.
    page.keyboard.type(platform.key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Live states")).to_contain_text("live")
    shot(page, "jobs-empty")

    assert page.evaluate("sessionStorage.getItem('vtp.apiKey')") == platform.key
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert urls
    assert not [url for url in urls if platform.key in url]

    # A reload keeps the session; another tab (another context) has to sign in.
    page.reload()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    other = browser.new_context(base_url=platform.url).new_page()
    other.goto("/")
    expect(other.get_by_label("API key")).to_be_visible()
    other.context.close()

    # Tab reaches the navigation; signing out forgets the key.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_deep_link_loads_after_signing_in(page: Page, platform: Platform) -> None:
    page.goto("/pools")
    page.get_by_label("API key").fill(platform.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Pools")).to_be_visible()
    expect(page.locator("tr[data-pool='local']")).to_be_visible()
    shot(page, "pools")
