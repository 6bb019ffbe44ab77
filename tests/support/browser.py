"""Headless Chromium (Debian's ``chromium``) driven by Playwright, for browser tests.

Playwright's own browser download is not used: the system Chromium is launched with
``executable_path``; flags keep it from reaching the network beyond loopback.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str:
    """The system Chromium.

    Raises:
        AssertionError: it is not installed (``.ci/run`` installs Debian's ``chromium``).
    """
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path and Path(path).exists(), ("Debian package 'chromium' is not installed; "
                                          "run .ci/run or apt-get install chromium")
    return path


def launch() -> Iterator[Browser]:
    """A headless Chromium for the duration of a ``with``-style generator (use with pytest fixtures)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as a test artifact (``.state/test/screenshots/<name>.png``)."""
    from tests.support.stack import STATE

    folder = STATE / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login_through_gateway(page: Page, gateway: str, keycloak: str, path: str, username: str, password: str) -> None:
    """Open ``gateway + path``, log in on Keycloak's form and wait to be back on that page."""
    page.goto(gateway + path)
    page.wait_for_selector("#username")
    assert page.url.startswith(keycloak), page.url
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#kc-login")
    page.wait_for_url(gateway + path)
