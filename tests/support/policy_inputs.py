"""Policy inputs for the PDP tests: the RBAC matrix of the policy's own data with varied subjects
and resources (tests/integration/test_pdp_differential.py, tests/unit/test_decision_cache.py)."""

from __future__ import annotations

import itertools
import random
from typing import Any

VERBS = ("view", "create", "update", "delete", "pick", "scan", "review", "pack", "ship", "count", "move",
         "approve", "export")
KINDS = ("item", "list", "bulk", "aggregate")


def matrix_inputs(roles: list[str], modules: list[str], now_ms: int) -> list[dict[str, Any]]:
    """Two inputs per role set x module x verb: a favourable one and one varied at random (seeded)."""
    rng = random.Random(20261207)
    now = now_ms // 1000
    role_sets = [[r] for r in roles] + [[], ["no_such_role"], ["picker", "reviewer"],
                                        ["warehouse_keeper", "finance"], ["sysadmin", "ops_supervisor"],
                                        ["temp_picker"]]
    scopes = [{"warehouse": ["*"], "channel": ["*"], "order_type": ["*"]},
              {"warehouse": ["HF"], "channel": ["*"], "order_type": ["*"]},
              {"warehouse": ["*"], "channel": ["taobao"], "order_type": ["*"]},
              {"warehouse": ["HF", "SH"], "channel": ["douyin", "jd"], "order_type": ["b2c"]},
              {}]
    attribute_sets = [{"warehouse": ["HF"], "channel": ["taobao"], "order_type": ["b2c"]},
                      {"warehouse": ["SH"], "channel": ["douyin"], "order_type": ["b2b"]},
                      {"warehouse": ["HF", "SH"], "channel": ["jd"], "order_type": ["cross_border"]},
                      {"warehouse": ["*"], "channel": ["*"], "order_type": ["*"]},
                      {"warehouse": ["HF"]}, {}]
    logins = [("mfa", now - 20), ("mfa", now - 4000), ("pwd", now - 20), (None, None)]
    out = []
    for role_set, module, verb, favourable in itertools.product(role_sets, [*modules, "no_such_module"], VERBS,
                                                                (True, False)):
        # favourable: what the role may do, it may do here (full scope, fresh MFA, resource found);
        # else a random subject and resource (out of scope, stale login, closed grant windows...)
        acr, auth_time = logins[0] if favourable else rng.choice(logins)
        grants = []
        if role_set and rng.random() < 0.2:
            start = now + (-900 if favourable else rng.choice([-3600, 3600]))
            grants = [{"role": role_set[0], "valid_from": start, "valid_until": start + 1800}]
        kind = rng.choice(KINDS)
        subject = {"id": "u-1", "username": "someone", "roles": role_set,
                   "scope": scopes[0] if favourable else rng.choice(scopes),
                   "acr": acr, "auth_time": auth_time, "grants": grants, "client_id": "wms-cli"}
        also = [{"module": "order_amounts", "verb": "view"}] if rng.random() < 0.1 else []
        attributes = attribute_sets[0] if favourable else rng.choice(attribute_sets)
        resource = {"kind": kind, "id": None if kind == "list" else "R-1",
                    "attributes": {} if kind == "list" and rng.random() < 0.5 else attributes}
        if not favourable and rng.random() < 0.05:
            resource["found"] = False
        policy_input: dict[str, Any] = {
            "subject": subject, "action": {"module": module, "verb": verb, "also": also},
            "resource": resource,
            "request": {"method": rng.choice(["GET", "POST", "DELETE"]), "route": "/api/orders/{order_no}",
                        "client_ip": "127.0.0.1", "time_ms": now_ms},
        }
        if verb == "approve":
            policy_input["approval"] = {
                "id": "a-1", "operation": rng.choice(["order_delete", "inventory_adjust", "iam_change"]),
                "requester_id": rng.choice(["u-1", "u-2"]), "deciders": rng.choice([[], ["u-1"], ["u-3"]]),
                "status": "pending"}
        out.append(policy_input)
    return out
