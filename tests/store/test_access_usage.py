"""Usage from the audit trail (SQLite, or PostgreSQL with WMSGATE_TEST_DB): last use per permission,
scope value and grant window; denied requests and other people's requests do not count."""

from __future__ import annotations

import asyncio
from pathlib import Path

from authorizer.audit import AuditRecord, AuditStore
from authorizer.iam.usage import TrailUsage, person_usage, trail_usage, unused_items

T0 = 1_800_000_000_000  # ms since the epoch (UTC)
PERMISSIONS = {"picker": ["orders:pick", "orders:scan", "orders:view"], "reviewer": ["reviews:review", "reviews:view"],
               "temp_counter": ["inventory:count"]}


def _rec(n: int, user_id: str, module: str, verb: str, ts: int, warehouse: str = "", decision: str = "allow",
         reason: str = "allowed") -> AuditRecord:
    return AuditRecord(decision_id=f"u{n}", ts_ms=ts, decision=decision, reason_code=reason, http_status=200,
                       method="GET", path="/x", user_id=user_id, username=user_id, module=module, verb=verb,
                       warehouse=warehouse)


def _usage(url: str, since: int, holders: list[str]) -> TrailUsage:
    async def run() -> TrailUsage:
        store = AuditStore(url)
        await store.create_schema()
        await store.insert_many([
            _rec(1, "u-a", "orders", "pick", T0 + 1000, "HF"),
            _rec(2, "u-a", "orders", "pick", T0 + 5000, "HF,SH"),
            _rec(3, "u-a", "orders", "scan", T0 - 10_000, "HF"),  # before the window
            _rec(4, "u-a", "reviews", "view", T0 + 2000, "SZ", decision="deny"),  # asking is not using
            _rec(8, "u-a", "reviews", "review", T0 + 2500, "SZ", reason="approval_required"),  # held: not yet used
            _rec(5, "u-b", "reviews", "view", T0 + 3000, "SZ"),
            _rec(6, "u-a", "inventory", "count", T0 + 7000, "HF"),
            _rec(7, "u-a", "inventory", "count", T0 + 20_000, "HF"),  # after the grant ended
        ])
        try:
            return await trail_usage(store.engine, since, holders)
        finally:
            await store.close()

    return asyncio.run(run())


def test_a_role_is_judged_by_what_only_it_gives() -> None:
    usage = TrailUsage()
    usage.permissions["u"] = {"portal:view": T0, "orders:view": T0}
    perms = {"picker": ["portal:view", "orders:view", "orders:pick"], "packer": ["portal:view", "orders:view",
                                                                                "orders:pack"]}
    report = person_usage({"user_id": "u", "username": "u", "roles": ["picker", "packer"], "scope": {}}, perms, usage)
    assert [r["last_used_ms"] for r in report["roles"]] == [None, None], "opening the portal uses neither role"
    alone = person_usage({"user_id": "u", "username": "u", "roles": ["picker"], "scope": {}}, perms, usage)
    assert alone["roles"][0]["last_used_ms"] == T0


def test_last_use_per_permission_scope_value_and_grant(tmp_path: Path, store_url: str) -> None:
    usage = _usage(store_url, T0, ["u-a"])
    person = {"user_id": "u-a", "username": "a", "roles": ["picker", "reviewer", "temp_counter"],
              "scope": {"warehouse": ["HF", "SH", "SZ"], "channel": ["*"]},
              "grants": [{"grant_id": "g1", "role": "temp_counter", "valid_from_s": (T0 + 6000) // 1000,
                          "valid_until_s": (T0 + 10_000) // 1000},
                         {"grant_id": "g2", "role": "temp_counter", "valid_from_s": (T0 + 30_000) // 1000,
                          "valid_until_s": (T0 + 40_000) // 1000}]}
    report = person_usage(person, PERMISSIONS, usage)
    roles = {r["role"]: r for r in report["roles"]}
    assert roles["picker"]["last_used_ms"] == T0 + 5000
    assert {p["permission"]: p["last_used_ms"] for p in roles["picker"]["permissions"]} == {
        "orders:pick": T0 + 5000, "orders:scan": None, "orders:view": None}
    assert roles["reviewer"]["last_used_ms"] is None, "a denied or held request is not a use"
    scope = {(s["dimension"], s["value"]): s["last_used_ms"] for s in report["scope"]}
    assert scope == {("warehouse", "HF"): T0 + 20_000, ("warehouse", "SH"): T0 + 5000, ("warehouse", "SZ"): None,
                     ("channel", "*"): None}
    assert [(g["grant_id"], g["last_used_ms"]) for g in report["grants"]] == [("g1", T0 + 7000), ("g2", None)]
    assert report["last_used_ms"] == T0 + 20_000
    assert unused_items(report) == [
        {"kind": "permission", "name": "picker/orders:scan"}, {"kind": "permission", "name": "picker/orders:view"},
        {"kind": "role", "name": "reviewer"}, {"kind": "scope", "name": "channel=*"},
        {"kind": "scope", "name": "warehouse=SZ"}, {"kind": "grant", "name": "temp_counter (g2)"}]
    other = person_usage({"user_id": "u-b", "username": "b", "roles": ["reviewer"], "scope": {}}, PERMISSIONS, usage)
    assert other["roles"][0]["last_used_ms"] == T0 + 3000 and unused_items(other) == [
        {"kind": "permission", "name": "reviewer/reviews:review"}]
