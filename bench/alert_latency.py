"""Benchmark: event -> alert latency of the alerting service's push path. Prints figures; asserts nothing.

Starts the real alerting service (``python -m alerting``, SQLite store in a scratch
folder, no Keycloak or audit source) on 127.0.0.1 with a local webhook receiver, then
pushes ``--events`` signed events the way the Keycloak plugin does (``POST /events``,
``X-WMS-Signature``), one every ``--interval`` seconds. Each event is a disabled
account's login attempt for a new username, so each opens one alert. Latency is from
the start of the push to the webhook receiving the alert; prints median, p95, p99 and
max in ms, and the push answer time. Everything stays on 127.0.0.1 and is bounded.

Usage: .venv/bin/python bench/alert_latency.py [--events 300] [--interval 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-events-secret"
API_TOKEN = "bench-alert-api-token-0123456789"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _run(events: int, interval: float, port: int) -> None:
    arrived: dict[str, float] = {}
    got_all = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        alert = (await request.json())["alert"]
        arrived[alert["subject"]] = time.perf_counter()
        if len(arrived) >= events:
            got_all.set()
        return web.Response(status=204)

    sink = web.Application()
    sink.router.add_post("/hook", receive)
    runner = web.AppRunner(sink, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port + 1).start()

    scratch = Path(tempfile.mkdtemp(prefix="wmsgate-bench-alerts-"))
    config = scratch / "alerting.yaml"
    config.write_text(yaml.safe_dump({
        "listen": {"host": "127.0.0.1", "port": port},
        "store": {"url": f"sqlite+aiosqlite:///{scratch / 'alerts.db'}"},
        "intake": {"secret": SECRET}, "api": {"token": API_TOKEN},
        "rules": str(REPO / "config" / "alert-rules.yaml"),
        "delivery": {"retry_initial_seconds": 0.2, "retry_max_seconds": 1},
        "notifiers": [{"kind": "webhook", "name": "bench", "url": f"http://127.0.0.1:{port + 1}/hook"}],
    }), encoding="utf-8")
    log = (scratch / "alerting.log").open("wb")
    service = subprocess.Popen([sys.executable, "-m", "alerting", "--config", str(config)], cwd=REPO,  # noqa: ASYNC220
                               stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    sent: dict[str, float] = {}
    answer_ms: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            started = time.perf_counter()
            for n in range(events):
                username = f"bench.{n}.{uuid.uuid4().hex[:6]}"
                body = json.dumps({"kind": "user", "id": uuid.uuid4().hex, "time": int(time.time() * 1000),
                                   "type": "LOGIN_ERROR", "realm_id": "wms", "client_id": "wms-cli", "user_id": None,
                                   "session_id": None, "ip_address": "127.0.0.9", "user_agent": "bench",
                                   "error": "user_disabled", "details": {"username": username}}).encode()
                signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                sent[username] = time.perf_counter()
                async with session.post(f"http://127.0.0.1:{port}/events", data=body,
                                        headers={"X-WMS-Signature": signature,
                                                 "Content-Type": "application/json"}) as resp:
                    assert resp.status == 202, await resp.text()
                answer_ms.append((time.perf_counter() - sent[username]) * 1000)
                await asyncio.sleep(interval)
            pushed_s = time.perf_counter() - started
            try:
                await asyncio.wait_for(got_all.wait(), timeout=60)
            except TimeoutError:
                pass
    finally:
        service.terminate()
        service.wait(timeout=15)
        log.close()
        await runner.cleanup()
    latencies = [(arrived[u] - t) * 1000 for u, t in sent.items() if u in arrived]
    print(f"alerting push path, {events} events, one every {interval * 1000:.0f} ms "
          f"({events / pushed_s:.0f} events/s offered)")
    print(f"  alerts delivered: {len(latencies)}/{events}")
    if latencies:
        print(f"  event -> alert at the webhook (ms): median {statistics.median(latencies):.1f}  "
              f"p95 {_percentile(latencies, 0.95):.1f}  p99 {_percentile(latencies, 0.99):.1f}  "
              f"max {max(latencies):.1f}")
    print(f"  push answered (ms): median {statistics.median(answer_ms):.1f}  p99 {_percentile(answer_ms, 0.99):.1f}")


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between pushes")
    parser.add_argument("--port", type=int, default=38070, help="alerting service port (webhook on port + 1)")
    args = parser.parse_args()
    asyncio.run(_run(args.events, args.interval, args.port))


if __name__ == "__main__":
    main()
