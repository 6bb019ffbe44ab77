"""`wmsgate login`: the browser login of the admin CLI (loopback redirect, PKCE), in headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Browser

from tests.support.browser import enter_otp
from tests.support.stack import PASSWORD, Stack
from wmsgate.tools import REPO


def test_wmsgate_login_with_mfa_then_access_command_acts_as_that_admin(stack: Stack, browser: Browser,
                                                                       tmp_path: Path) -> None:
    token_file = tmp_path / "token.json"
    env = {**os.environ, "WMSGATE_TOKEN_FILE": str(token_file), "WMSGATE_URL": stack.proxy}
    env.pop("WMSGATE_TOKEN", None)
    cli = subprocess.Popen([sys.executable, "-m", "wmsgate.cli", "login", "--mfa", "--no-browser",
                            "--issuer", stack.stack.issuer], cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert cli.stdout is not None
        url = next(line.strip() for line in cli.stdout if line.strip().startswith("http"))
        page = browser.new_page()
        page.goto(url)
        page.fill("#username", "admin1")
        page.fill("#password", PASSWORD)
        page.click("#kc-login")
        page.wait_for_selector("#otp")
        enter_otp(page, lambda: stack.tokens.next_code("admin1"))
        page.wait_for_selector("text=Signed in")
        assert cli.wait(timeout=30) == 0, cli.stderr.read() if cli.stderr else ""
    finally:
        if cli.poll() is None:
            cli.kill()
    stored = json.loads(token_file.read_text(encoding="utf-8"))
    part = stored["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    assert claims["preferred_username"] == "admin1" and claims["acr"] == "mfa"
    assert oct(token_file.stat().st_mode)[-3:] == "600"
    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "access", "set-roles", "temp.picker01",
                          "--role", "temp_picker"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    location = out.stdout.strip().rsplit(stack.proxy, 1)[1]
    with stack.client("admin2", mfa=True) as admin2:
        assert admin2.post(f"{location}/reject", json={"comment": "test only"}).json()["status"] == "rejected"
