"""The alert engine on a real store (SQLite, or PostgreSQL with WMSGATE_TEST_DB=postgresql):
de-duplication, grouping, durable deliveries with retries, acknowledge/resolve, restarts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from alerting.delivery import DeliveryWorker, backoff_ms
from alerting.detectors import build_detectors
from alerting.engine import Engine
from alerting.events import SecurityEvent
from alerting.notifiers import NotifierError
from alerting.rules import Rules
from alerting.store import ACKNOWLEDGED, OPEN, RESOLVED, AlertConflict, AlertStore, now_ms


def login(n: int, ip: str, ua: str, at: int) -> SecurityEvent:
    return SecurityEvent("user", f"login-{n}", at, "LOGIN", user_id="u1", username="picker.hf", ip=ip, user_agent=ua,
                         session_id=f"s{n}", details={"username": "picker.hf"})


class FlakyNotifier:
    """Fails ``failures`` times, then accepts; remembers what it accepted."""

    def __init__(self, name: str, failures: int) -> None:
        self.name = name
        self.failures = failures
        self.sent: list[dict[str, Any]] = []

    async def send(self, alert: dict[str, Any]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise NotifierError("receiver down")
        self.sent.append(alert)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def engine_for(store: AlertStore, notifiers: list[str]) -> Engine:
    return Engine(store, lambda: build_detectors(Rules()), notifiers, Rules().longest_window_ms())


async def started(store_url: str, notifiers: list[str]) -> tuple[AlertStore, Engine]:
    """A store with its schema and a primed engine on it."""
    store = AlertStore(store_url)
    await store.create_schema()
    engine = engine_for(store, notifiers)
    await engine.prime()
    return store, engine


def test_duplicates_are_dropped_and_repeats_are_grouped_on_one_alert(store_url: str) -> None:
    async def scenario() -> None:
        store, engine = await started(store_url, ["hook"])
        t = now_ms()
        assert (await engine.ingest(login(1, "127.0.0.2", "A", t), "push")).new_alerts == ()
        opened = await engine.ingest(login(2, "127.0.0.3", "B", t + 10), "push")
        assert len(opened.new_alerts) == 1
        assert (await engine.ingest(login(2, "127.0.0.3", "B", t + 10), "backfill")).duplicate
        again = await engine.ingest(login(3, "127.0.0.2", "A", t + 20), "push")
        assert again.new_alerts == () and again.grouped == opened.new_alerts
        alert = await store.alert(opened.new_alerts[0])
        assert alert is not None and alert["count"] == 2 and alert["status"] == OPEN
        assert alert["evidence"] == ["user:login-1", "user:login-2", "user:login-3"]
        assert [d["notifier"] for d in await store.deliveries(alert["alert_id"])] == ["hook"]  # one delivery only
        await store.close()
    run(scenario())


def test_a_restart_rebuilds_detector_state_from_the_store(store_url: str) -> None:
    async def scenario() -> None:
        store, first = await started(store_url, [])
        t = now_ms()
        await first.ingest(login(1, "127.0.0.2", "A", t), "push")
        second = engine_for(store, [])  # a new process: empty memory
        assert await second.prime() == 1
        assert len((await second.ingest(login(2, "127.0.0.3", "B", t + 5), "push")).new_alerts) == 1
        await store.close()
    run(scenario())


def test_acknowledge_then_resolve_and_refuse_impossible_moves(store_url: str) -> None:
    async def scenario() -> None:
        store, engine = await started(store_url, [])
        t = now_ms()
        await engine.ingest(login(1, "127.0.0.2", "A", t), "push")
        [alert_id] = (await engine.ingest(login(2, "127.0.0.3", "B", t + 1), "push")).new_alerts
        acked = await store.change_status(alert_id, ACKNOWLEDGED, "admin1", "looking")
        assert acked["acknowledged_by"] == "admin1" and acked["note"] == "looking"
        with pytest.raises(AlertConflict):
            await store.change_status(alert_id, ACKNOWLEDGED, "admin2", None)
        # while acknowledged, a repeat is still counted on it (no new alert, no new message)
        assert (await engine.ingest(login(3, "127.0.0.2", "A", t + 2), "push")).grouped == (alert_id,)
        resolved = await store.change_status(alert_id, RESOLVED, "admin1", None)
        assert resolved["status"] == RESOLVED and resolved["resolved_by"] == "admin1"
        with pytest.raises(KeyError):
            await store.change_status("nope", RESOLVED, "admin1", None)
        # after resolving, the same pattern opens a new alert
        assert len((await engine.ingest(login(4, "127.0.0.3", "B", t + 3), "push")).new_alerts) == 1
        assert (await store.counts()) == {RESOLVED: 1, OPEN: 1}
        await store.close()
    run(scenario())


def test_a_failed_delivery_is_retried_until_accepted_and_never_dropped(store_url: str) -> None:
    async def scenario() -> None:
        store = AlertStore(store_url)
        await store.create_schema()
        flaky = FlakyNotifier("hook", failures=2)
        worker = DeliveryWorker(store, {"hook": flaky}, retry_initial_seconds=0.05, retry_max_seconds=0.1)
        engine = engine_for(store, ["hook", "gone"])  # "gone": a notifier no longer configured
        await engine.prime()
        t = now_ms()
        await engine.ingest(login(1, "127.0.0.2", "A", t), "push")
        [alert_id] = (await engine.ingest(login(2, "127.0.0.3", "B", t + 1), "push")).new_alerts
        for _ in range(40):
            await worker.run_once()
            if flaky.sent:
                break
            await asyncio.sleep(0.05)
        assert [a["alert_id"] for a in flaky.sent] == [alert_id]
        deliveries = {d["notifier"]: d for d in await store.deliveries(alert_id)}
        assert deliveries["hook"]["status"] == "sent" and deliveries["hook"]["attempts"] == 3
        assert deliveries["gone"]["status"] == "pending" and "not configured" in deliveries["gone"]["last_error"]
        await store.close()
    run(scenario())


def test_backoff_doubles_up_to_the_limit() -> None:
    assert [backoff_ms(n, 1, 5) for n in (1, 2, 3, 4, 5)] == [1000, 2000, 4000, 5000, 5000]


def test_when_the_store_fails_the_event_leaves_no_trace_and_is_taken_later(store_url: str) -> None:
    async def scenario() -> None:
        store, engine = await started(store_url, [])
        t = now_ms()
        await engine.ingest(login(1, "127.0.0.2", "A", t), "push")
        real_record = store.record

        async def broken(*_args: Any, **_kwargs: Any) -> Any:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        store.record = broken  # type: ignore[method-assign]
        with pytest.raises(OperationalError):
            await engine.ingest(login(2, "127.0.0.3", "B", t + 1), "push")
        store.record = real_record  # type: ignore[method-assign]
        # the sender retries: the event is new to the store, and the detectors count it once
        retried = await engine.ingest(login(2, "127.0.0.3", "B", t + 1), "push")
        assert len(retried.new_alerts) == 1
        alert = await store.alert(retried.new_alerts[0])
        assert alert is not None and alert["evidence"] == ["user:login-1", "user:login-2"]
        await store.close()
    run(scenario())
