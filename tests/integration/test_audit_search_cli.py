"""`wmsgate audit search` against the audit trail the real proxy wrote."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.stack import Stack
from wmsgate.tools import REPO


def _search(stack: Stack, *args: str) -> str:
    url = stack.audit.url
    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "audit", "search", "--db", url, *args],
                         cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


def test_audit_search_finds_a_pick_confirmation_by_user_time_module_and_verb(stack: Stack) -> None:
    order = stack.order(warehouse="HF", status="pending_pick")
    with stack.client("picker.hf") as c:
        resp = c.post(f"/api/picking/{order['order_no']}/confirm")
    assert resp.status_code == 200
    decision_id = resp.headers["X-Decision-Id"]
    stack.audit_record(decision_id)
    lines = _search(stack, "--user", "picker.hf", "--since", "1h", "--module", "orders", "--verb", "pick", "--json")
    rows = [json.loads(line) for line in lines.splitlines()]
    assert rows and all(r["username"] == "picker.hf" and r["verb"] == "pick" for r in rows)
    mine = next(r for r in rows if r["decision_id"] == decision_id)
    assert mine["resource_id"] == order["order_no"] and mine["decision"] == "allow"
    table = _search(stack, "--user", "picker.hf", "--since", "1h", "--resource", order["order_no"])
    assert order["order_no"] in table and "picker.hf" in table and "record(s)" in table
    none = _search(stack, "--user", "nobody", "--since", "1h", "--json")
    assert none.strip() == ""


def test_audit_search_pages_with_limit_and_offset(stack: Stack) -> None:
    with stack.client("picker.hf") as c:
        last = None
        for _ in range(5):
            last = c.get("/api/picking/tasks", params={"page_size": 1})
    assert last is not None
    stack.audit_record(last.headers["X-Decision-Id"])
    first = [json.loads(x) for x in _search(stack, "--user", "picker.hf", "--limit", "2", "--json").splitlines()]
    second = [json.loads(x) for x in _search(stack, "--user", "picker.hf", "--limit", "2", "--offset", "2",
                                             "--json").splitlines()]
    assert len(first) == 2 and len(second) == 2
    assert {r["decision_id"] for r in first}.isdisjoint({r["decision_id"] for r in second})
    assert first[-1]["ts_ms"] >= second[0]["ts_ms"]  # newest first across pages
