"""Fixtures of the browser tests: one headless Chromium per module, a fresh context per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext

from tests.support.browser import launch


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    yield from launch()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A browser profile of its own (cookies, sessions) in zh-CN."""
    ctx = browser.new_context(locale="zh-CN")
    try:
        yield ctx
    finally:
        ctx.close()
