"""Soak: the gateway's memory over a long run. Prints figures; asserts nothing.

Starts its own stack on 127.0.0.1 (ports +20000, state in .state/bench), loads the gateway with wrk
(closed loop, a mix of users and endpoints: single reads with masks, narrowed lists, refusals) in
chunks, and after each chunk reads how many requests the gateway has answered (its own
``wmsgate_requests_total`` on the management port) and its resident memory. Prints the RSS after
the first ``--baseline`` requests and after ``--requests``, and the growth between them (target:
within 10 %); then, since the RSS read right after a burst of fast requests is higher than after
a slow chunk, each endpoint's first reading after the baseline beside its last. Bounded by
``--max-minutes``; every load stays on 127.0.0.1.

Usage: .venv/bin/python bench/soak.py [--requests 1000000] [--baseline 100000] [--max-minutes 45]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchstack import answered, bench_stack, proxy_pid, rss_mib, token
from bench.loadgen import run_wrk, wrk_path

#: (user, path): what the soak sends, in turn (allowed reads with masks, narrowed lists, a refusal).
MIX = [("finance", "/api/orders/SO2024110100005"), ("picker.hf", "/api/picking/tasks?page_size=5"),
       ("reviewer.hf", "/api/orders?page_size=5"), ("ops.taobao", "/api/orders?page_size=5"),
       ("picker.hf", "/api/reports/finance")]


def main() -> None:
    """Run the soak and print the memory figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=100_000)
    parser.add_argument("--chunk-seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--max-minutes", type=float, default=45.0)
    args = parser.parse_args()
    wrk_path()
    with bench_stack() as (stack, _):
        tokens = {user: token(stack, user) for user in {u for u, _ in MIX}}
        pid = proxy_pid(stack)
        print(f"{dt.date.today().isoformat()}  machine: {platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}; soak to {args.requests:,} requests, "
              f"{args.connections} connections, {args.chunk_seconds:.0f} s chunks")
        print(f"  {'requests':>12}{'RSS MiB':>10}{'req/s':>8}  endpoint of the last chunk")
        started = renewed = time.monotonic()
        baseline_rss: float | None = None
        done, rss = 0, rss_mib(pid)
        #: per endpoint, its first reading after the baseline and its last: the RSS read right after
        #: a fast chunk (a burst of refusals) is higher than after a slow one, so like is compared with like
        first_after: dict[tuple[str, str], float] = {}
        last: dict[tuple[str, str], float] = {}
        for user, path in itertools.cycle(MIX):
            if time.monotonic() - started > args.max_minutes * 60:
                print(f"  stopped at the time bound ({args.max_minutes:.0f} min)")
                break
            if time.monotonic() - renewed > 200:  # tokens live 5 minutes in the demo realm
                tokens, renewed = {u: token(stack, u) for u in tokens}, time.monotonic()
            load = run_wrk(stack.proxy_url + path, args.chunk_seconds, args.connections, f"Bearer {tokens[user]}")
            done, rss = answered(stack), rss_mib(pid)
            print(f"  {done:12,}{rss:10.1f}{load.rps:8.0f}  {user} {path}", flush=True)
            if baseline_rss is not None:
                first_after.setdefault((user, path), rss)
                last[(user, path)] = rss
            if baseline_rss is None and done >= args.baseline:
                baseline_rss = rss
            if done >= args.requests:
                break
        if baseline_rss is not None:
            growth = (rss - baseline_rss) / baseline_rss * 100
            print(f"RSS after {args.baseline:,}: {baseline_rss:.1f} MiB; after {done:,}: {rss:.1f} MiB; "
                  f"growth {growth:+.1f}% (target: within 10%)")
            print("the same endpoint's chunk, first after the baseline -> last:")
            for (user, path), first in first_after.items():
                end = last[(user, path)]
                print(f"  {user} {path}: {first:.1f} -> {end:.1f} MiB ({(end - first) / first * 100:+.1f}%)")

if __name__ == "__main__":
    main()
