"""Benchmark: the audit trail's write and search speed on SQLite and PostgreSQL. Prints figures; asserts nothing.

1. Store: load ``--records`` (default 1,000,000) chained records, 1,000 per transaction
   as the writer does, spread over 30 days and 500 people; print sustained inserts/s.
   Then time ``--queries`` searches for one person over one day (newest first, first
   page of 100) and print p50 / p95 / max in ms.
2. Proxy under load: start the stack (ports +30000, state in .state/bench-audit) on
   the same backend, drive closed-loop reads through the proxy for ``--seconds``
   and print requests/s, audit records written per second and the most records that
   waited in the writer (from the health endpoint).

PostgreSQL is a throwaway cluster (Debian package binaries) on 127.0.0.1:35432.
Every load stays on 127.0.0.1 and is bounded in time.

Usage: .venv/bin/python bench/audit_store.py [--backends sqlite,postgresql] [--records 1000000]
       [--queries 50] [--seconds 15] [--concurrency 32] [--skip-proxy] [--skip-store]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_overhead import _token, closed_loop

from authorizer.audit import AuditQuery, AuditRecord, AuditStore
from wmsgate.devstack import LocalStack, Ports, StackSettings
from wmsgate.pgcluster import LocalPostgres
from wmsgate.tools import REPO

DAY_MS = 86_400_000
USERS = [f"user{n:03d}" for n in range(500)]
MODULES = [("orders", "view"), ("orders", "pick"), ("inventory", "view"), ("reports", "export"), ("customers", "view")]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _records(start: int, count: int, t0: int, span_ms: int, total: int) -> list[AuditRecord]:
    out = []
    for n in range(start, start + count):
        module, verb = MODULES[n % len(MODULES)]
        user = USERS[(n * 7919) % len(USERS)]
        out.append(AuditRecord(
            decision_id=f"b{n:09d}", ts_ms=t0 + n * span_ms // total, decision="allow" if n % 20 else "deny",
            reason_code="allowed" if n % 20 else "out_of_scope", http_status=200 if n % 20 else 403, method="GET",
            path=f"/api/{module}/R{n}", username=user, user_id=f"id-{user}", roles="picker", module=module, verb=verb,
            resource_id=f"R{n}", warehouse="HF" if n % 3 else "SH", channel="tmall", client_ip="10.0.0.7",
            total_ms=1.5, detail={}))
    return out


async def store_bench(url: str, records: int, queries: int) -> None:
    """Load ``records`` and time one-day one-user searches."""
    store = AuditStore(url)
    await store.create_schema()
    now = int(time.time() * 1000)
    t0 = now - 30 * DAY_MS
    batch = 1000
    started = time.perf_counter()
    for start in range(0, records, batch):
        await store.insert_many(_records(start, min(batch, records - start), t0, 30 * DAY_MS, records))
        if start and start % 200_000 == 0:
            print(f"    {start:,} records loaded ...", flush=True)
    elapsed = time.perf_counter() - started
    print(f"  sustained inserts: {records / elapsed:,.0f} records/s ({records:,} in {elapsed:.1f} s, "
          f"{batch} per transaction, hash chain included)")
    rng = random.Random(7)
    latencies, sizes = [], []
    for _ in range(queries):
        day = t0 + rng.randrange(29) * DAY_MS
        query = AuditQuery(user=rng.choice(USERS), since=dt.datetime.fromtimestamp(day / 1000, dt.UTC),
                           until=dt.datetime.fromtimestamp((day + DAY_MS) / 1000, dt.UTC), limit=100)
        t = time.perf_counter()
        rows = await store.search(query)
        latencies.append((time.perf_counter() - t) * 1000)
        sizes.append(len(rows))
    print(f"  one-day one-user search over {records:,} records ({queries} queries, first page of 100): "
          f"p50 {_pct(latencies, 0.5):.2f} ms, p95 {_pct(latencies, 0.95):.2f} ms, max {max(latencies):.2f} ms; "
          f"{sum(sizes) / len(sizes):.0f} rows on average")
    await store.close()


async def _watch_pending(url: str, stop: asyncio.Event) -> int:
    most = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(url) as resp:
                body = await resp.json()
            most = max(most, body["checks"]["audit"]["pending"])
            await asyncio.sleep(0.2)
    return most


async def _count(url: str) -> int:
    store = AuditStore(url)
    try:
        async with store.engine.connect() as conn:
            from sqlalchemy import func, select

            from authorizer.audit.store import audit_records
            return int((await conn.execute(select(func.count()).select_from(audit_records))).scalar() or 0)
    finally:
        await store.close()


def proxy_bench(audit_url: str | None, seconds: float, concurrency: int) -> None:
    """Reads through the proxy while its writer records every one of them."""
    state = REPO / ".state" / "bench-audit"
    shutil.rmtree(state, ignore_errors=True)
    stack = LocalStack(StackSettings(state=state, ports=Ports.offset(30000), audit_url=audit_url))
    stack.start()
    try:
        headers = {"Authorization": f"Bearer {_token(stack, 'picker.hf')}"}
        url = stack.proxy_url + "/api/picking/tasks?page_size=20"
        asyncio.run(closed_loop(url, headers, 2, 8))
        before = asyncio.run(_count(stack.audit_url))

        async def run() -> tuple[object, int]:
            stop = asyncio.Event()
            watcher = asyncio.create_task(_watch_pending(stack.proxy_url + "/_gateway/health", stop))
            result = await closed_loop(url, headers, seconds, concurrency)
            stop.set()
            return result, await watcher

        result, most_pending = asyncio.run(run())
        time.sleep(1.0)  # the last flush
        written = asyncio.run(_count(stack.audit_url)) - before
        print(f"  proxy under load: {result.rps:,.0f} req/s for {seconds:.0f} s ({concurrency} connections), "  # type: ignore[attr-defined]
              f"{written / seconds:,.0f} audit records/s written, {written:,} records for "
              f"{result.count:,} requests; at most {most_pending:,} records waited in the writer")  # type: ignore[attr-defined]
    finally:
        stack.stop()


def main() -> None:
    """Run the benchmark on each backend and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--skip-proxy", action="store_true")
    parser.add_argument("--skip-store", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.platform()}\n")
    for backend in args.backends.split(","):
        print(f"[{backend}]", flush=True)
        pg = None
        scratch = Path(tempfile.mkdtemp(prefix="wmsgate-bench-"))
        try:
            if backend == "postgresql":
                pg = LocalPostgres(35432)
                pg.init()
                pg.start()
                store_url = pg.create_database("bench_store")
            else:
                store_url = f"sqlite+aiosqlite:///{scratch / 'bench.db'}"
            if not args.skip_store:
                asyncio.run(store_bench(store_url, args.records, args.queries))
            if not args.skip_proxy:
                proxy_bench(pg.create_database("bench_proxy") if pg else None, args.seconds, args.concurrency)
        finally:
            if pg is not None:
                pg.destroy()
            shutil.rmtree(scratch, ignore_errors=True)
        print(flush=True)
    print("single runs: repeat to see the spread.")


if __name__ == "__main__":
    main()
