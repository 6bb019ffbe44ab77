"""The alert store's step-up demands (SQLite, or PostgreSQL with WMSGATE_TEST_DB): unresolved
alerts of the demanding rules name their person with the time the alert opened."""

from __future__ import annotations

import asyncio

from alerting.detectors.base import Detection
from alerting.events import SecurityEvent
from alerting.rules import Rules, load_rules
from alerting.store import AlertStore
from wmsgate.tools import REPO


def _detection(rule: str, user_id: str, at: int) -> Detection:
    return Detection(rule=rule, severity="high", group_key=f"{rule}|{user_id}", subject=user_id,
                     title_zh="测试", title_en="test", evidence=("e",), at_ms=at, group_window_ms=3_600_000,
                     facts={"username": f"name-{user_id}", "user_id": user_id})


def test_unresolved_alerts_of_demanding_rules_name_their_person(store_url: str) -> None:
    rules = load_rules(REPO / "config" / "alert-rules.yaml")
    assert rules.step_up_rules() == {"multi_device_login", "impossible_travel"}
    assert Rules().step_up_rules() == {"multi_device_login", "impossible_travel"}

    async def run() -> None:
        store = AlertStore(store_url)
        await store.create_schema()
        now = 1_796_000_000_000
        for n, (rule, user) in enumerate([("multi_device_login", "u1"), ("failed_login_burst", "u2"),
                                          ("multi_device_login", "u3")]):
            event = SecurityEvent("user", f"ev{n}", now + n, "LOGIN", user_id=user)
            await store.record(event, "test", [_detection(rule, user, now + n)], [])
        demands = await store.step_up_demands(rules.step_up_rules(), now - 1000)
        assert sorted((d["user_id"], d["since_ms"]) for d in demands) == [("u1", now), ("u3", now + 2)]
        u3 = next(d for d in demands if d["user_id"] == "u3")
        await store.change_status(u3["alert_id"], "resolved", "admin1", "her own PDA")
        assert [d["user_id"] for d in await store.step_up_demands(rules.step_up_rules(), now - 1000)] == ["u1"]
        assert await store.step_up_demands(rules.step_up_rules(), now + 10) == []  # older than the lookback
        await store.close()

    asyncio.run(run())
