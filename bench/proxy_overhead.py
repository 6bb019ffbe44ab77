"""Benchmark: what the gateway adds to a read, on this machine. Prints figures; asserts nothing.

Starts its own stack on 127.0.0.1 (ports +20000, state in .state/bench), then for
each endpoint measures, directly on the demo WMS and through the proxy with a
valid token:
  * closed-loop throughput (requests/s) and p50/p99 latency (ms) at a fixed
    concurrency for a fixed time;
  * latency at a fixed offered rate (default 1,000 req/s, open loop) and the
    latency the proxy adds (proxy minus direct, p50 and p99, ms);
  * the proxy process's resident memory (MiB) after the run.
Every load stays on 127.0.0.1 and is bounded in time.

Usage: .venv/bin/python bench/proxy_overhead.py [--seconds 10] [--rate 1000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wmsgate.devstack import LocalStack, Ports, StackSettings
from wmsgate.tools import REPO


@dataclass
class Result:
    """Latencies in milliseconds, throughput in requests per second, errors = non-200 answers."""

    rps: float
    p50: float
    p99: float
    errors: int
    count: int


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def closed_loop(url: str, headers: dict[str, str], seconds: float, concurrency: int) -> Result:
    """``concurrency`` workers send back-to-back requests for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.get(url) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result(len(latencies) / elapsed, _pct(latencies, 0.5), _pct(latencies, 0.99), errors, len(latencies))


async def fixed_rate(url: str, headers: dict[str, str], seconds: float, rate: float) -> Result:
    """Open loop: start one request every 1/rate s for ``seconds`` (latency measured from its scheduled start)."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async def one(scheduled: float) -> None:
            nonlocal errors
            async with session.get(url) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)

        tasks = []
        start = time.perf_counter()
        n = int(seconds * rate)
        for i in range(n):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return Result(len(latencies) / elapsed, _pct(latencies, 0.5), _pct(latencies, 0.99), errors, len(latencies))


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _proxy_pid(stack: LocalStack) -> int:
    proc = next(s.process for s in stack.services if s.name == "proxy")
    assert proc is not None
    return proc.pid


def _token(stack: LocalStack, username: str) -> str:
    import httpx

    resp = httpx.post(f"{stack.issuer}/protocol/openid-connect/token",
                      data={"grant_type": "password", "client_id": "wms-cli", "username": username,
                            "password": "wms-demo"})
    resp.raise_for_status()
    return resp.json()["access_token"]


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    state = REPO / ".state" / "bench"
    shutil.rmtree(state, ignore_errors=True)
    stack = LocalStack(StackSettings(state=state, ports=Ports.offset(20000)))
    print("starting the stack ...", flush=True)
    stack.start()
    try:
        # (title, user, path through the proxy, the same request as the proxy sends it to the WMS)
        endpoints = [
            ("finance: GET /api/orders/{no} (attribute lookup cached, contact fields masked)", "finance",
             "/api/orders/SO2024110100005", "/api/orders/SO2024110100005"),
            ("picker.hf: GET /api/picking/tasks (narrowed to HF, rows filtered and masked)", "picker.hf",
             "/api/picking/tasks?page_size=20", "/api/picking/tasks?page_size=20&warehouse=HF"),
        ]
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
              f"{platform.platform()}")
        print(f"closed loop: {args.concurrency} connections for {args.seconds:.0f} s; "
              f"open loop: {args.rate:.0f} req/s for {args.seconds:.0f} s; latency in ms\n")
        for title, user, path, direct_path in endpoints:
            headers = {"Authorization": f"Bearer {_token(stack, user)}"}
            direct_url, proxy_url = stack.wms_url + direct_path, stack.proxy_url + path
            asyncio.run(closed_loop(proxy_url, headers, 2, 8))  # warm-up (caches, connections)
            d = asyncio.run(closed_loop(direct_url, {}, args.seconds, args.concurrency))
            p = asyncio.run(closed_loop(proxy_url, headers, args.seconds, args.concurrency))
            dr = asyncio.run(fixed_rate(direct_url, {}, args.seconds, args.rate))
            pr = asyncio.run(fixed_rate(proxy_url, headers, args.seconds, args.rate))
            print(title)
            print(f"  {'':28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
            for name, r in (("direct WMS, closed loop", d), ("via proxy, closed loop", p),
                            (f"direct WMS @ {args.rate:.0f}/s", dr), (f"via proxy @ {args.rate:.0f}/s", pr)):
                print(f"  {name:28}{r.rps:10.0f}{r.p50:10.2f}{r.p99:10.2f}{r.errors:8d}")
            print(f"  throughput ratio proxy/direct: {p.rps / d.rps:.2f}")
            print(f"  added latency at {args.rate:.0f} req/s: p50 {pr.p50 - dr.p50:+.2f} ms, "
                  f"p99 {pr.p99 - dr.p99:+.2f} ms (targets: 0.5 / 2)")
            for name, r in (("direct WMS", dr), ("proxy", pr)):
                if r.rps < 0.95 * args.rate:
                    print(f"  note: {name} saturated at the offered rate (served {r.rps:.0f}/s of {args.rate:.0f}/s); "
                          "its latency there is mostly queueing")
            print(f"  proxy RSS after run: {_rss_mib(_proxy_pid(stack)):.1f} MiB\n", flush=True)
        print("single runs: repeat to see the spread.")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
