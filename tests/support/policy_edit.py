"""Editing the served demo policy layer in a test (the stack serves a copy of rego/demo that
tests may change) and waiting until OPA serves the edit."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.stack import Stack


def policy_status(stack: Stack) -> dict[str, Any]:
    """The policy service's ``/status`` document (serving revision, rejected edit)."""
    return httpx.get(f"{stack.stack.policy_url}/status", timeout=10).json()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` every 0.2 s until true; returns the seconds waited.

    Raises:
        AssertionError: still false after ``timeout`` seconds (naming ``what``).
    """
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.fixture
def policy_dir(stack: Stack) -> Iterator[Path]:
    """The served policy folder; restored (and the restore served) after the test."""
    folder = stack.stack.settings.policy_dir
    backup = folder.parent / "policy.backup"
    shutil.rmtree(backup, ignore_errors=True)
    shutil.copytree(folder, backup)
    original = policy_status(stack)["serving"]["revision"]
    yield folder
    shutil.rmtree(folder)
    shutil.copytree(backup, folder)
    wait_for(lambda: policy_status(stack)["serving"]["revision"] == original and policy_status(stack)["rejected"]
             is None, 30, "the original policy to be served again")
    with stack.client("finance") as c:
        wait_for(lambda: c.get("/api/reports/finance").status_code == 200
                 and stack.audit_record(c.get("/api/reports/finance").headers["X-Decision-Id"])["policy_revision"]
                 == original, 15, "OPA to load the original bundle")
