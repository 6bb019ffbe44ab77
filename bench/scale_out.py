"""Benchmark: throughput and p99 latency through 1 and 2 proxy processes. Prints figures; asserts nothing.

Starts its own stack on 127.0.0.1 (ports +25000, state in .state/bench-scale) with the
audit trail, approvals and sessions in a throwaway PostgreSQL cluster (127.0.0.1:35433),
then drives closed-loop reads (picker.hf, GET /api/picking/tasks: narrowed, filtered,
masked) for ``--seconds`` each through:
  1. the demo WMS directly (the same request the proxy sends);
  2. one proxy process;
  3. ``wmsgate proxy --workers 2`` (two processes, one port);
  4. two proxies on two ports sharing PostgreSQL (connections split between them).
Every load stays on 127.0.0.1 and is bounded in time. On a 2-CPU machine the load
generator, the WMS, OPA and PostgreSQL share the CPUs with the proxies: read the figures
as what this machine gives, not as a ceiling.

Usage: .venv/bin/python bench/scale_out.py [--seconds 10] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_overhead import Result, _token, closed_loop

from wmsgate.devstack import LocalStack, Ports, StackSettings
from wmsgate.pgcluster import LocalPostgres
from wmsgate.tools import REPO

PATH = "/api/picking/tasks?page_size=20"
DIRECT = "/api/picking/tasks?page_size=20&warehouse=HF"


def cpu_seconds(pgid: int) -> float:
    """CPU time (user + system, seconds) used so far by every process of a process group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat (pgrp), counted after the command name
            total += int(fields[11]) + int(fields[12])
    return total / tick


def _pgid(stack: LocalStack, name: str) -> int:
    proc = next(s.process for s in stack.services if s.name == name)
    assert proc is not None
    return proc.pid  # each service runs in its own session: its pid is the group id


def _measured(stack: LocalStack, proxies: list[str], run: Callable[[], Result]) -> tuple[Result, float, float]:
    """Run a load; returns its result and the CPU seconds per 1,000 requests of the proxies and of OPA."""
    groups = [_pgid(stack, n) for n in proxies]
    before = [cpu_seconds(g) for g in groups], cpu_seconds(_pgid(stack, "opa"))
    result = run()
    proxy_cpu = sum(cpu_seconds(g) for g in groups) - sum(before[0])
    opa_cpu = cpu_seconds(_pgid(stack, "opa")) - before[1]
    return result, 1000 * proxy_cpu / max(result.count, 1), 1000 * opa_cpu / max(result.count, 1)


async def _split(urls: list[str], headers: dict[str, str], seconds: float, concurrency: int) -> Result:
    """Closed loop over several proxies at once (connections split evenly); figures combined."""
    parts = await asyncio.gather(*(closed_loop(u, headers, seconds, concurrency // len(urls)) for u in urls))
    count = sum(p.count for p in parts)
    return Result(sum(p.rps for p in parts), max(p.p50 for p in parts), max(p.p99 for p in parts),
                  sum(p.errors for p in parts), count)


def main() -> None:
    """Run the scenarios and print one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    state = REPO / ".state" / "bench-scale"
    shutil.rmtree(state, ignore_errors=True)
    pg = LocalPostgres(35433)
    pg.init()
    pg.start()
    ports = Ports.offset(25000)
    settings = StackSettings(state=state, ports=ports)
    settings = dataclasses.replace(settings, audit_url=pg.create_database("wmsgate"))
    stack = LocalStack(settings)
    print("starting the stack (PostgreSQL store) ...", flush=True)
    try:
        stack.start()
        workers = stack.start_extra_proxy("proxy-workers", ports.proxy + 1, ["--workers", "2"])
        second = stack.start_extra_proxy("proxy-2", ports.proxy + 2, ["--worker-index", "1"])
        headers = {"Authorization": f"Bearer {_token(stack, 'picker.hf')}"}
        for url in (stack.proxy_url, workers, second):
            asyncio.run(closed_loop(url + PATH, headers, 2, 8))  # warm-up
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
        print(f"closed loop, {args.concurrency} connections, {args.seconds:.0f} s each; picker.hf GET {PATH}\n")
        s, c = args.seconds, args.concurrency
        rows = [
            ("direct WMS", (asyncio.run(closed_loop(stack.wms_url + DIRECT, {}, s, c)), 0.0, 0.0)),
            ("1 proxy process", _measured(stack, ["proxy"], lambda: asyncio.run(
                closed_loop(stack.proxy_url + PATH, headers, s, c)))),
            ("--workers 2 (one port)", _measured(stack, ["proxy-workers"], lambda: asyncio.run(
                closed_loop(workers + PATH, headers, s, c)))),
            ("2 proxies, 2 ports, one PostgreSQL", _measured(stack, ["proxy", "proxy-2"], lambda: asyncio.run(
                _split([stack.proxy_url + PATH, second + PATH], headers, s, c)))),
        ]
        print(f"  {'':36}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}"
              f"{'proxy CPU-s/1k req':>20}{'OPA CPU-s/1k req':>18}")
        for name, (r, proxy_cpu, opa_cpu) in rows:
            print(f"  {name:36}{r.rps:8.0f}{r.p50:9.2f}{r.p99:9.2f}{r.errors:7d}{proxy_cpu:20.2f}{opa_cpu:18.2f}")
        rows = [(name, r) for name, (r, _, _) in rows]
        base = rows[1][1].rps
        print(f"\n  scaling vs one process: --workers 2 x{rows[2][1].rps / base:.2f}, "
              f"two proxies x{rows[3][1].rps / base:.2f}; direct WMS is x{rows[0][1].rps / base:.2f}")
    finally:
        stack.stop()
        pg.destroy()


if __name__ == "__main__":
    main()
