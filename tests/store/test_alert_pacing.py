"""Issue 18, robots that a burst cannot flood: 200 alerts of one rule within a window become
at most 3 messages to a DingTalk robot (the first at once, the rest as a digest within its
size limit), no robot gets more than its rate, and alerts left unacknowledged escalate once
for the burst; nothing is dropped. One test runs the issue's case in real time (200 alerts
over 60 seconds, DingTalk's 60-second window, about a minute per store); the others scale time
down. A fake robot on 127.0.0.1 answers as DingTalk does."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from alerting.config import Pacing
from alerting.delivery import DeliveryWorker
from alerting.detectors.base import Detection
from alerting.events import SecurityEvent
from alerting.notifiers.robots import DingTalkNotifier
from alerting.store import AlertStore, now_ms


def _event(n: int) -> tuple[SecurityEvent, Detection]:
    at = now_ms()
    event = SecurityEvent("decision", f"d{n}", at, "allow", user_id="u9", username="supervisor",
                          details={"module": "orders", "verb": "delete", "resource_id": f"SO-{n}"})
    return event, Detection(
        rule="high_risk_operation", severity="high", group_key=f"high_risk_operation|SO-{n}", subject="supervisor",
        title_zh=f"高风险操作:删除订单 SO-{n}", title_en=f"high-risk operation: order SO-{n} deleted",
        evidence=(event.key,), at_ms=at, group_window_ms=600_000, facts={"resource_id": f"SO-{n}"})


@asynccontextmanager
async def _robot(received: list[dict[str, Any]]) -> AsyncIterator[str]:
    """A robot on 127.0.0.1 that answers as DingTalk does and keeps every message; yields its URL."""
    async def robot(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    app = web.Application()
    app.router.add_post("/robot/send", robot)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/robot/send"))
    finally:
        await server.close()


@asynccontextmanager
async def _paced(store_url: str, received: list[dict[str, Any]],
                 pacing: Pacing) -> AsyncIterator[tuple[AlertStore, DeliveryWorker]]:
    """A fresh alert store and a delivery worker sending to one fake DingTalk robot with ``pacing``."""
    store = AlertStore(store_url)
    await store.create_schema()
    try:
        async with _robot(received) as url, aiohttp.ClientSession() as session:
            yield store, DeliveryWorker(store, {"ding": DingTalkNotifier("ding", url, None, session)},
                                        pacing=pacing)
    finally:
        await store.close()


def _messages(received: list[dict[str, Any]]) -> tuple[list[str], list[str], list[int]]:
    """``(plain, escalations, counts)``: the robot's messages by kind, and how many alerts each
    plain message stands for (a digest's headline says so; a single alert is 1)."""
    texts = [m["markdown"]["text"] for m in received]
    escalations = [t for t in texts if "escalation" in t.splitlines()[0]]
    plain = [t for t in texts if t not in escalations]
    counts = [int(m.group(1)) if (m := re.search(r"(\d+) alerts", t.splitlines()[0])) else 1 for t in plain]
    return plain, escalations, counts


def test_200_alerts_in_a_window_are_at_most_3_robot_messages_and_one_escalation(store_url: str) -> None:
    received: list[dict[str, Any]] = []

    async def scenario() -> None:
        async with _paced(store_url, received, Pacing(window_seconds=3, per_minute=20,
                                                       escalate_after_seconds=4)) as (store, worker):
            for n in range(200):  # the burst: 200 distinct alerts of one rule, within the window
                event, detection = _event(n)
                result = await store.record(event, "audit", [detection], ["ding"])
                assert len(result.new_alerts) == 1
                if n == 0:
                    await worker.run_once()  # the first goes out at once
            started = time.monotonic()
            while time.monotonic() - started < 6:
                await worker.run_once()
                await asyncio.sleep(0.2)
            pending = await store.due_deliveries(now_ms() + 3_600_000, limit=1000)
            alerts = await store.alerts(limit=1000)
            sent = [d for a in alerts for d in await store.deliveries(a["alert_id"])]
        plain, escalations, counts = _messages(received)
        texts = plain + escalations
        assert 2 <= len(plain) <= 3, texts  # the first at once, the rest as a digest
        assert len(escalations) == 1 and "200 alerts still unacknowledged" in escalations[0], escalations
        assert all(len(t.encode("utf-8")) <= DingTalkNotifier.max_bytes for t in texts)
        assert sum(counts) == 200 and any("more" in t for t in plain)  # digests say how many they stand for
        assert pending == [] and len(sent) == 400  # 200 alerts + 200 escalations: none dropped
        assert all(d["status"] == "sent" for d in sent)

    asyncio.run(scenario())


def test_a_robot_never_gets_more_than_its_rate_and_what_waits_is_not_lost(store_url: str) -> None:
    received: list[dict[str, Any]] = []

    async def scenario() -> list[dict[str, Any]]:
        async with _paced(store_url, received, Pacing(window_seconds=0, per_minute=2)) as (store, worker):
            for n in range(5):  # five rules: five messages are due at once
                event, detection = _event(n)
                await store.record(event, "audit", [Detection(**{**detection.__dict__, "rule": f"rule_{n}"})],
                                   ["ding"])
            await worker.run_once()
            await worker.run_once()
            return await store.due_deliveries(now_ms() + 120_000, limit=100)

    waiting = asyncio.run(scenario())
    assert len(received) == 2  # the robot's rate (DingTalk, WeCom: 20 a minute; here 2)
    assert len(waiting) == 3 and all(w["attempts"] == 0 and w["next_attempt_ms"] > now_ms() + 50_000
                                     for w in waiting)  # held for the next free minute, not failed


def test_200_alerts_over_60_real_seconds_are_at_most_3_robot_messages_and_one_escalation(store_url: str) -> None:
    """The issue's case at full scale, in real time (bounded: about 65 s): 200 alerts of one rule
    arriving over 60 seconds, DingTalk's 60-second window, escalation after a minute."""
    received: list[dict[str, Any]] = []

    async def scenario() -> None:
        async with _paced(store_url, received, Pacing(window_seconds=60, per_minute=20,
                                                       escalate_after_seconds=60)) as (store, worker):
            started = time.monotonic()
            for n in range(200):  # one alert every 0.29 s: the last at about 58 s
                event, detection = _event(n)
                await store.record(event, "audit", [detection], ["ding"])
                await worker.run_once()
                await asyncio.sleep(max(0.0, started + (n + 1) * 0.29 - time.monotonic()))
            while time.monotonic() - started < 64:  # the window ends and the escalation is due at 60 s
                await worker.run_once()
                await asyncio.sleep(0.25)
            pending = await store.due_deliveries(now_ms() + 3_600_000, limit=1000)
        plain, escalations, counts = _messages(received)
        texts = plain + escalations
        assert len(texts) <= 3 and len(escalations) == 1, [t.splitlines()[0] for t in texts]
        assert sum(counts) == 200 and "200 alerts still unacknowledged" in escalations[0]
        assert pending == []  # every alert was told, none is waiting or lost

    asyncio.run(scenario())
