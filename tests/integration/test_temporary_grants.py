"""Issue "Dynamic access" case 1: 50 temporary pickers from one CSV, one approval, a short window."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.support.form_login import LoginFailed, code_flow_login
from tests.support.grants import grant_now, password_token
from tests.support.stack import Stack, assert_refused
from wmsgate.tools import REPO

SHANGHAI = ZoneInfo("Asia/Shanghai")
WINDOW_SECONDS = 100


def _write_csv(path: Path, start: dt.datetime, end: dt.datetime) -> list[str]:
    names = [f"temp.hf.{n:03d}" for n in range(1, 51)]
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["username", "display_name", "role", "warehouses", "channels", "order_types", "valid_from",
                         "valid_until"])
        for n, name in enumerate(names, 1):
            writer.writerow([name, f"兼职拣货员{n:02d}", "temp_picker", "HF", "*", "*",
                             start.isoformat(timespec="seconds"), end.strftime("%Y-%m-%dT%H:%M:%S")])
    return names


def test_case_1_bulk_grant_of_50_temp_pickers_with_one_approval_and_a_short_window(stack: Stack,
                                                                                  tmp_path: Path) -> None:
    start = dt.datetime.now(SHANGHAI) - dt.timedelta(minutes=1)
    end = dt.datetime.now(SHANGHAI) + dt.timedelta(seconds=WINDOW_SECONDS)  # naive in the file: Asia/Shanghai
    names = _write_csv(tmp_path / "double11.csv", start, end)
    env = {**os.environ, "WMSGATE_TOKEN": stack.tokens.mfa("admin1"), "WMSGATE_URL": stack.proxy}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "access", "bulk-grant", str(tmp_path / "double11.csv")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    location = out.stdout.strip().rsplit(stack.proxy, 1)[1]
    with httpx.Client(base_url=stack.proxy, timeout=120,
                      headers={"Authorization": f"Bearer {stack.tokens.mfa('admin2')}"}) as admin2:
        done = admin2.post(f"{location}/approve").json()
    assert done["status"] == "executed" and done["result"]["status"] == 200, done
    assert time.monotonic() - started < 60, "one command and one approval should take under a minute"
    sheet = {row["username"]: row for row in done["result"]["body"]["sheet"]}
    assert set(sheet) == set(names)
    person = sheet["temp.hf.007"]
    assert person["new_account"] and person["temporary_password"] and person["valid_until"].endswith("+08:00")

    token = code_flow_login(stack.stack.issuer, "temp.hf.007", person["temporary_password"],
                            new_password="Double11-Pick!")["access_token"]
    order = stack.order(warehouse="HF", status="pending_pick")
    with httpx.Client(base_url=stack.proxy, headers={"Authorization": f"Bearer {token}"}, timeout=30) as temp:
        picked = temp.post(f"/api/picking/{order['order_no']}/confirm")
        assert picked.status_code == 200, picked.text
        assert picked.json()["updated_by"] == "temp.hf.007"
        time.sleep(max(0.0, end.timestamp() - time.time() + 0.3))  # the sweeper waits 5 s after the end
        after = temp.get("/api/picking/tasks")
    body = assert_refused(after, 403, "grant_outside_window")
    assert "temp_picker" in body["reason_en"]

    deadline = time.monotonic() + 30
    while True:
        try:
            code_flow_login(stack.stack.issuer, "temp.hf.007", "Double11-Pick!")
        except LoginFailed:
            break
        assert time.monotonic() < deadline, "the sweeper did not disable the account"
        time.sleep(1)
    admin = stack.keycloak_admin()
    user = admin.get_user(admin.get_user_id("temp.hf.007"))
    assert user["enabled"] is False and "wms_grant" not in (user.get("attributes") or {}) or \
        user["attributes"].get("wms_grant") in ([], None)


def test_bulk_grant_rejects_a_bad_file_before_anything_changes(stack: Stack, tmp_path: Path) -> None:
    rows = [{"username": "Bad Name!", "display_name": "x", "role": "temp_picker", "warehouses": "HF",
             "channels": "*", "order_types": "*", "valid_from": "2026-11-29T08:00:00",
             "valid_until": "2026-11-29T07:00:00"}]
    with stack.client("admin1", mfa=True) as admin1:
        resp = admin1.post("/_gateway/access/bulk-grant", json={"rows": rows})
    body = assert_refused(resp, 400, "bad_grant")
    assert "row 1" in body["reason_en"]


@pytest.mark.parametrize("who", ["supervisor", "keeper.hf"])
def test_only_sysadmins_may_request_grants(stack: Stack, who: str) -> None:
    rows = [{"username": "temp.hf.999", "display_name": "x", "role": "temp_picker", "warehouses": "HF",
             "channels": "*", "order_types": "*", "valid_from": "2026-11-29T08:00:00",
             "valid_until": "2026-11-30T08:00:00"}]
    with stack.client(who, mfa=True) as c:
        assert_refused(c.post("/_gateway/access/bulk-grant", json={"rows": rows}), 403, "missing_permission")


def test_an_admin_ends_a_temporary_grant_early_and_the_person_is_refused_at_once(
        stack: Stack, throwaway_user: Callable[..., tuple[str, str]]) -> None:
    username, user_id = throwaway_user("early")
    grant_id = grant_now(stack, username, "picker", "HF")
    token = password_token(stack, username)
    with httpx.Client(base_url=stack.proxy, headers={"Authorization": f"Bearer {token}"}, timeout=30) as person:
        assert person.get("/api/picking/tasks").status_code == 200
        with stack.client("picker.hf") as picker:  # not a sysadmin: may not revoke
            assert_refused(picker.post("/_gateway/access/revoke-grant",
                                       json={"username": username, "grant_id": grant_id, "reason": "x"}), 403)
        with stack.client("admin1") as admin1:  # narrowing: one admin, no step-up, no second person
            done = admin1.post("/_gateway/access/revoke-grant",
                               json={"username": username, "grant_id": grant_id, "reason": "项目提前结束 / ended"})
            assert done.status_code == 200, done.text
            assert any("role removed: picker" in step for step in done.json()["steps"])
            assert_refused(admin1.post("/_gateway/access/revoke-grant", json={
                "username": username, "grant_id": grant_id, "reason": "again"}), 404, "grant_not_found")
        assert_refused(person.get("/api/picking/tasks"), 401, "token_revoked")
    admin = stack.keycloak_admin()
    assert "picker" not in {r["name"] for r in admin.get_realm_roles_of_user(user_id)}
    [row] = stack.audit.sql("SELECT swept_ms, note FROM grants WHERE grant_id = :g", {"g": grant_id})
    assert row["swept_ms"] is not None and row["note"] == "role and window removed"


def test_a_grant_given_in_hours_starts_when_it_is_approved(
        stack: Stack, throwaway_user: Callable[..., tuple[str, str]]) -> None:
    """JIT access: a grant of ``hours`` held for four-eyes approval starts at the approval, so
    the wait for the second admin does not eat into the time granted."""
    username, _ = throwaway_user("jit")
    row = {"username": username, "display_name": "", "role": "temp_picker", "warehouses": "HF", "channels": "*",
           "order_types": "*", "hours": "2"}
    with httpx.Client(base_url=stack.proxy, timeout=60,
                      headers={"Authorization": f"Bearer {stack.tokens.mfa('admin1')}"}) as admin1:
        held = admin1.post("/_gateway/access/bulk-grant", json={"rows": [row]})
        both = admin1.post("/_gateway/access/bulk-grant", json={"rows": [{**row, "valid_from": "2026-01-01T00:00"}]})
    assert held.status_code == 202, held.text
    assert_refused(both, 400, "bad_grant")
    time.sleep(3)  # the second admin takes a while
    approved_at = int(time.time())
    with httpx.Client(base_url=stack.proxy, timeout=60,
                      headers={"Authorization": f"Bearer {stack.tokens.mfa('admin2')}"}) as admin2:
        done = admin2.post(f"{held.headers['Location']}/approve").json()
    assert done["status"] == "executed" and done["result"]["status"] == 200, done
    [grant] = stack.audit.sql("SELECT valid_from_s, valid_until_s FROM grants WHERE username = :u", {"u": username})
    assert approved_at - 1 <= grant["valid_from_s"] <= approved_at + 5  # from the approval, not the request
    assert grant["valid_until_s"] - grant["valid_from_s"] == 2 * 3600
