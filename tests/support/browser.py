"""Headless Chromium (Debian's ``chromium``) driven by Playwright, for browser tests.

Playwright's own browser download is not used: the system Chromium is launched with
``executable_path``; flags keep it from reaching the network beyond loopback.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.support.device import TEST_DEVICE_UA

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-agent={TEST_DEVICE_UA}"]


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



OTP_ERROR = "[id^=input-error-otp]"  # Keycloak's OTP field error (base and keycloak.v2 themes)


def enter_otp(page: Page, next_code: Callable[[], str], wait_s: float = 15.0) -> None:
    """Type a TOTP code on Keycloak's OTP form and submit it, as a person would.

    A code typed as its 30-second window closes can reach Keycloak after it, and Keycloak
    then shows the OTP form again with an error; a person types the next code. This does the
    same, once, so a test does not fail on the clock. A wrong code still fails the caller's
    next wait (the form stays).

    Args:
        page: a page showing Keycloak's OTP form (``#otp``).
        next_code: returns a code Keycloak has not seen yet (``Tokens.next_code``).
        wait_s: how long (seconds) to watch for the form to come back with an error.
    """
    page.fill("#otp", next_code())
    page.click("#kc-login")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        page.wait_for_timeout(200)
        try:
            if page.locator("#otp").count() == 0:
                return  # the browser left the form: accepted
            if page.locator(OTP_ERROR).count():
                break  # the form came back with an error
        except PlaywrightError:
            continue  # between two pages
    else:
        return  # still on the form without an error: the caller's own wait reports it
    time.sleep(1)
    page.fill("#otp", next_code())
    page.click("#kc-login")
