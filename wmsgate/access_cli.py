"""``wmsgate login`` and ``wmsgate access ...``: clients of the gateway's management API.

They act as the admin who runs them: with the bearer token in ``$WMSGATE_TOKEN``, or
with the token ``wmsgate login`` stored after a browser login (authorization code flow
with PKCE to a loopback redirect, RFC 8252 / RFC 7636).
"""

from __future__ import annotations

import csv
import http.server
import json
import os
import sys
import threading
import time
import webbrowser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from wmsgate.pkce import authorization_request

LOOPBACK_PORT = 8765
REDIRECT_URI = f"http://127.0.0.1:{LOOPBACK_PORT}/callback"
FINAL_STATES = {"executed", "rejected", "expired", "failed", "outcome_unknown", "withdrawn"}


class CliError(Exception):
    """A command failed; the message is printed and the exit code is 1."""


def token_file() -> Path:
    """Where ``wmsgate login`` keeps the token (``$WMSGATE_TOKEN_FILE`` or ``~/.config/wmsgate/token.json``)."""
    return Path(os.environ.get("WMSGATE_TOKEN_FILE", Path.home() / ".config" / "wmsgate" / "token.json"))


def gateway_url(explicit: str | None) -> str:
    """The gateway base URL (``--gateway``, ``$WMSGATE_URL`` or the local demo's)."""
    return (explicit or os.environ.get("WMSGATE_URL") or "http://127.0.0.1:8080").rstrip("/")


def current_token() -> str:
    """The admin's access token: ``$WMSGATE_TOKEN``, else the stored login (refreshed if needed).

    Raises:
        CliError: neither is available, or the stored login expired.
    """
    env = os.environ.get("WMSGATE_TOKEN")
    if env:
        return env.strip()
    path = token_file()
    if not path.exists():
        raise CliError("not logged in: run `wmsgate login` or set WMSGATE_TOKEN / 未登录")
    stored = json.loads(path.read_text(encoding="utf-8"))
    if stored["expires_at"] - time.time() > 30:
        return str(stored["access_token"])
    resp = httpx.post(f"{stored['issuer']}/protocol/openid-connect/token", timeout=30, data={
        "grant_type": "refresh_token", "client_id": stored["client_id"], "refresh_token": stored["refresh_token"]})
    if resp.status_code != 200:
        raise CliError("the stored login expired: run `wmsgate login` again")
    _store(stored["issuer"], stored["client_id"], resp.json())
    return str(resp.json()["access_token"])


def _store(issuer: str, client_id: str, tokens: dict[str, Any]) -> None:
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"issuer": issuer, "client_id": client_id, "access_token": tokens["access_token"],
            "refresh_token": tokens.get("refresh_token", ""), "expires_at": time.time() + tokens["expires_in"]}
    path.write_text(json.dumps(data), encoding="utf-8")
    path.chmod(0o600)


def login(issuer: str, client_id: str, mfa: bool, open_browser: bool, timeout: float = 300) -> dict[str, Any]:
    """Log in through the browser and store the token.

    Starts a one-shot HTTP server on the loopback redirect, prints (and optionally opens)
    the authorization URL, waits for the redirect, checks ``state`` and exchanges the code
    with the PKCE verifier.

    Args:
        mfa: ask for step-up (``acr_values=mfa``), needed for widening access changes.

    Returns:
        The token endpoint's answer.

    Raises:
        CliError: no redirect within ``timeout`` seconds, a state mismatch, or a failed exchange.
    """
    auth = authorization_request(client_id, REDIRECT_URI, acr_values="mfa" if mfa else None)
    verifier, state = auth.verifier, auth.state
    url = f"{issuer}/protocol/openid-connect/auth?{urlencode(auth.params)}"
    received: dict[str, list[str]] = {}

    class Callback(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            if urlsplit(self.path).path == "/callback" and not received:
                received.update(query)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write("<p>登录完成,可以关闭此页面。/ Signed in; you can close this page.</p>".encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", LOOPBACK_PORT), Callback)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"在浏览器中打开 / Open in a browser:\n  {url}", flush=True)
    if open_browser:
        webbrowser.open(url)
    deadline = time.monotonic() + timeout
    try:
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.shutdown()
        server.server_close()
    if not received:
        raise CliError("no login within the time limit / 登录超时")
    if received.get("state") != [state] or "code" not in received:
        raise CliError(f"login failed: {received.get('error_description') or received.get('error') or 'bad state'}")
    resp = httpx.post(f"{issuer}/protocol/openid-connect/token", timeout=30, data={
        "grant_type": "authorization_code", "client_id": client_id, "code": received["code"][0],
        "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
    if resp.status_code != 200:
        raise CliError(f"code exchange failed: {resp.text}")
    _store(issuer, client_id, resp.json())
    return resp.json()


GRANT_COLUMNS = ("username", "display_name", "role", "warehouses", "channels", "order_types", "valid_from",
                 "valid_until")


def read_grant_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a bulk-grant CSV (UTF-8, BOM allowed, header row with :data:`GRANT_COLUMNS`).

    Raises:
        CliError: unreadable file or missing columns.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = set(GRANT_COLUMNS) - set(reader.fieldnames or [])
            if missing:
                raise CliError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            return [dict(row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CliError(f"{path}: {exc}") from exc


def print_sheet(sheet: list[dict[str, Any]]) -> None:
    """The sheet for the warehouse manager: who, role, warehouses, window (Asia/Shanghai), first password."""
    print("用户名 username	姓名 name	角色 role	仓库 warehouses	生效 from	失效 until	初始密码 first password")
    for row in sheet:
        print("\t".join([row["username"], row["display_name"], row["role"], "|".join(row["warehouses"]),
                         row["valid_from"], row["valid_until"],
                         row["temporary_password"] or "(已有账号 existing account)"]))


def call(gateway: str, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST ``body`` to the gateway's management API as the current admin."""
    return httpx.post(f"{gateway}{path}", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {current_token()}"})


def wait_for(gateway: str, location: str, timeout: float) -> dict[str, Any]:
    """Poll an approval until it reaches a final state (or ``timeout`` seconds pass)."""
    deadline = time.monotonic() + timeout
    while True:
        doc = httpx.get(f"{gateway}{location}", timeout=30,
                        headers={"Authorization": f"Bearer {current_token()}"}).json()
        if doc.get("status") in FINAL_STATES or time.monotonic() > deadline:
            return doc
        time.sleep(1)


def report(resp: httpx.Response, gateway: str, wait: bool, timeout: float) -> int:
    """Print what happened; 0 when the change ran or is waiting for approval, 1 when refused."""
    try:
        body = resp.json()
    except ValueError:
        body = {"error": resp.text}
    if resp.status_code == 202:
        location = resp.headers["Location"]
        print(f"等待第二位管理员审批 / waiting for a second admin's approval: {gateway}{location}")
        if not wait:
            return 0
        doc = wait_for(gateway, location, timeout)
        result = (doc.get("result") or {}).get("body")
        if isinstance(result, dict) and "sheet" in result:
            print_sheet(result["sheet"])
        else:
            print(json.dumps(doc, ensure_ascii=False, indent=2))
        return 0 if doc.get("status") == "executed" and doc["result"]["status"] == 200 else 1
    if resp.status_code == 200:
        for step in body.get("steps", []):
            print(f"  - {step}")
        return 0
    print(f"拒绝 / refused ({resp.status_code} {body.get('error')}): {body.get('reason_zh')} / {body.get('reason_en')}",
          file=sys.stderr)
    if "WWW-Authenticate" in resp.headers:
        print(f"  {resp.headers['WWW-Authenticate']}\n  run `wmsgate login --mfa` first", file=sys.stderr)
    return 1


def _when(ms: int | None) -> str:
    """A last-use time for people (UTC, to the minute), or 从未 / never."""
    if ms is None:
        return "从未 never"
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000)) + "Z"


def unused(gateway: str, days: int, user: str | None, as_json: bool) -> int:
    """Print what people hold but did not use in the last ``days`` days (``GET /_gateway/access/usage``).

    Returns:
        0 when answered (whatever it found), 1 when refused.
    """
    params: dict[str, str | int] = {"days": days, "unused": 1}
    if user:
        params["user"] = user
    resp = httpx.get(f"{gateway}/_gateway/access/usage", params=params, timeout=120,
                     headers={"Authorization": f"Bearer {current_token()}"})
    if resp.status_code != 200:
        return report(resp, gateway, False, 0)
    doc = resp.json()
    if as_json:
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return 0
    print(f"近 {days} 天未使用的权限 / held but not used in the last {days} days:")
    for person in doc["people"]:
        print(f"{person['username']}  (最近使用 last used: {_when(person['last_used_ms'])})")
        for item in person["unused"]:
            print(f"  {item['kind']:<10} {item['name']}")
    print(f"({len(doc['people'])} 人 / people)")
    return 0
