"""`wmsgate policy explain` and `wmsgate policy who-can` against the real Keycloak, OPA and WMS."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.support.stack import Stack
from wmsgate.tools import REPO


def _wmsgate(stack: Stack, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "policy", *args,
                          "--config", str(stack.stack.gateway_config)],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def _explain(stack: Stack, *args: str) -> dict[str, Any]:
    return json.loads(_wmsgate(stack, "explain", "--json", *args))


def test_explain_shows_route_input_rules_and_reason_of_a_scope_deny(stack: Stack) -> None:
    douyin = stack.order(channel="douyin")
    target = f"/legacy/order_detail.do?order_no={douyin['order_no']}"
    doc = _explain(stack, "--user", "ops.taobao", "--method", "GET", "--path", target)
    assert doc["route"]["template"] == "/legacy/order_detail.do" and doc["route"]["module"] == "orders"
    assert doc["resource"]["attributes"]["channel"] == ["douyin"]
    assert doc["input"]["subject"]["scope"]["channel"] == ["taobao"]
    assert doc["decision"]["allow"] is False and doc["decision"]["status"] == 403
    assert doc["rules"]["permitted"] is True and doc["rules"]["in_scope"] is False
    assert [r["code"] for r in doc["decision"]["reasons"]] == ["out_of_scope"]
    text = _wmsgate(stack, "explain", "--user", "ops.taobao", "--method", "GET", "--path", target)
    assert "DENY 403" in text and "out_of_scope" in text and "Input sent to OPA" in text and "routes.yaml:" in text


def test_explain_names_the_missing_permission(stack: Stack) -> None:
    body = json.dumps({"warehouse": "HF", "location": "A01-01", "sku": "SKU00001", "delta": 1, "reason": "x"})
    doc = _explain(stack, "--user", "picker.hf", "--method", "POST", "--path", "/api/inventory/adjust",
                   "--body", body)
    assert doc["rules"]["permitted"] is False and "inventory:update" in doc["rules"]["required"]
    assert "inventory:update" not in doc["rules"]["granted"]
    assert doc["decision"]["reasons"][0]["code"] == "missing_permission"


def test_explain_stops_at_hygiene_and_at_unmapped_routes(stack: Stack) -> None:
    doc = _explain(stack, "--user", "picker.hf", "--method", "GET",
                   "--path", "/api/picking/tasks/../../reports/finance")
    assert doc["refused_at"] == "hygiene" and doc["hygiene"]["code"] == "dot_segment"
    doc = _explain(stack, "--user", "picker.hf", "--method", "GET", "--path", "/API/Reports/Finance")
    assert doc["refused_at"] == "route"


def test_explain_of_an_allowed_list_shows_the_row_filter(stack: Stack) -> None:
    doc = _explain(stack, "--user", "keeper.hf", "--method", "GET", "--path", "/api/inventory")
    assert doc["decision"]["allow"] is True
    assert doc["decision"]["obligations"]["row_filter"] == {"warehouse": ["HF"]}


def test_who_can_pick_in_hf(stack: Stack) -> None:
    doc = json.loads(_wmsgate(stack, "who-can", "--module", "orders", "--verb", "pick", "--warehouse", "HF", "--json"))
    assert doc["roles"] == ["picker", "temp_picker"]
    users = {u["username"] for u in doc["users"]}
    assert {"picker.hf", "temp.picker01"} <= users
    assert not users & {"keeper.hf", "supervisor", "reviewer.hf", "admin1"}


def test_who_can_view_sz_inventory(stack: Stack) -> None:
    doc = json.loads(_wmsgate(stack, "who-can", "--module", "inventory", "--verb", "view", "--warehouse", "SZ",
                              "--json"))
    users = {u["username"] for u in doc["users"]}
    assert {"keeper.sz", "supervisor"} <= users
    assert not users & {"keeper.hf", "keeper.sh", "picker.hf", "finance"}
    text = _wmsgate(stack, "who-can", "--module", "inventory", "--verb", "view", "--warehouse", "SZ")
    assert "keeper.sz" in text and "warehouse_keeper" in text
