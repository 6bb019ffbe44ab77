"""Benchmark: what the gateway costs beside a bare aiohttp pass-through, on this machine. Prints
figures; asserts nothing.

Starts its own stack on 127.0.0.1 (ports +20000, state in .state/bench) and the bare pass-through
(bench/passthrough.py: one keep-alive session, no auth, no policy, no audit) in front of the same
demo WMS, then for each endpoint measures with wrk (Debian package):

  * closed-loop throughput (requests/s) and p50/p99 latency (ms) at a fixed concurrency, on the WMS
    directly, through the pass-through and through the gateway (full audit, the policy decided
    as configured: in-process by default, ``--sidecar`` to ask OPA), and the ratio
    gateway / pass-through;
  * latency at a fixed offered rate (default 1,000 req/s) and what the gateway adds over the
    pass-through and over the WMS directly (p50 and p99, ms);
  * the gateway's resident memory (MiB) after the run.

Every load stays on 127.0.0.1 and is bounded in time.

With ``--workers N`` (default 2) the single-order and list endpoints are also measured through a
gateway of N processes on one port (``wmsgate proxy --workers N``: the deployment for a machine
with N cores), beside the single-process one.

Usage: .venv/bin/python bench/proxy_overhead.py [--seconds 8] [--rate 1000] [--connections 32] [--sidecar]
       [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchstack import (
    CANNED_GATEWAY_PORT,
    CANNED_PASSTHROUGH_PORT,
    PASSTHROUGH_PORT,
    STATE,
    WORKERS_GATEWAY_PORT,
    bench_stack,
    proxy_pid,
    rss_mib,
    start_canned_wms,
    start_passthrough,
    token,
    wait_for_listeners,
)
from bench.loadgen import Load, run_wrk, wrk_path


def row(name: str, load: Load) -> str:
    """One table row."""
    return (f"  {name:34}{load.rps:10.0f}{load.p50:10.2f}{load.p99:10.2f}"
            f"{load.errors + load.non2xx:8d}")


def measure(title: str, urls: dict[str, str], auth: str, args: argparse.Namespace, paced: bool = True) -> None:
    """Load each of ``urls`` (direct WMS, bare pass-through, then one or more gateways, the names of
    these starting with "gateway"), print the table and, for each gateway, the ratio and the added
    latency."""
    gateways = [name for name in urls if name.startswith("gateway")]
    for name in gateways:
        run_wrk(urls[name], 2, 8, auth)  # warm-up (caches, connections)
    closed = {name: run_wrk(url, args.seconds, args.connections, auth if name in gateways else "")
              for name, url in urls.items()}
    print(title)
    print(f"  {'':34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, load in closed.items():
        print(row(f"{name}, closed loop", load))
    paced_loads: dict[str, Load] = {}
    if paced:
        paced_loads = {name: run_wrk(url, args.seconds, 16, auth if name in gateways else "", rate=args.rate)
                       for name, url in urls.items()}
        for name, load in paced_loads.items():
            print(row(f"{name} @ {args.rate:.0f}/s offered", load))
    for name in gateways:
        ratio = closed[name].rps / closed["bare pass-through"].rps
        print(f"  {name}: throughput ratio to the pass-through {ratio:.2f} (target >= 0.70); "
              f"to the WMS directly {closed[name].rps / closed['direct WMS'].rps:.2f}")
        if paced:
            g, b, d = paced_loads[name], paced_loads["bare pass-through"], paced_loads["direct WMS"]
            print(f"    added at {args.rate:.0f} req/s over the pass-through: p50 {g.p50 - b.p50:+.2f} ms, "
                  f"p99 {g.p99 - b.p99:+.2f} ms (targets: 1 / 3); over the WMS: p50 {g.p50 - d.p50:+.2f} ms, "
                  f"p99 {g.p99 - d.p99:+.2f} ms")


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sidecar", action="store_true", help="decide with the OPA sidecar, not in-process")
    parser.add_argument("--workers", type=int, default=2,
                        help="also measure a gateway with this many processes (wmsgate proxy --workers; 1: not)")
    args = parser.parse_args()
    wrk_path()  # fail early, with how to install it
    overrides: dict[str, object] = {"opa.evaluation": "sidecar"} if args.sidecar else {}
    with bench_stack(overrides) as (stack, helpers):
        helpers.append(start_passthrough(stack.wms_url))
        # (title, user, path through the gateway, the same request as the gateway sends it to the WMS)
        endpoints = [
            ("finance: GET /api/orders/{no} (attribute lookup cached, contact fields masked)", "finance",
             "/api/orders/SO2024110100005", "/api/orders/SO2024110100005"),
            ("picker.hf: GET /api/picking/tasks (narrowed to HF, rows filtered and masked)", "picker.hf",
             "/api/picking/tasks?page_size=20", "/api/picking/tasks?page_size=20&warehouse=HF"),
        ]
        pdp = "OPA sidecar" if args.sidecar else "in-process (Wasm)"
        print(f"{dt.date.today().isoformat()}  machine: {platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}; PDP: {pdp}; audit on (SQLite)")
        print(f"wrk closed loop: 1 thread, {args.connections} connections, {args.seconds:.0f} s; "
              f"paced: {args.rate:.0f} req/s offered for {args.seconds:.0f} s; latency in ms\n")
        passthrough_url = f"http://127.0.0.1:{PASSTHROUGH_PORT}"
        workers = None
        if args.workers > 1:
            workers = stack.start_extra_proxy("proxy-workers", WORKERS_GATEWAY_PORT, ["--workers", str(args.workers)])
            wait_for_listeners(WORKERS_GATEWAY_PORT, args.workers)  # ready means one worker answered
        for title, user, path, direct_path in endpoints:
            urls = {"direct WMS": stack.wms_url + direct_path, "bare pass-through": passthrough_url + direct_path,
                    "gateway": stack.proxy_url + path}
            if workers is not None:
                urls[f"gateway, {args.workers} workers"] = workers + path
            measure(title, urls, f"Bearer {token(stack, user)}", args)
            print(f"  gateway RSS after run: {rss_mib(proxy_pid(stack)):.1f} MiB\n", flush=True)
        # The demo WMS saturates first on list pages: in front of a WMS answering from memory the
        # gateway (or the pass-through) is what saturates, so its per-process throughput shows.
        canned, canned_url = start_canned_wms(stack, ["/api/picking/tasks?page_size=20&warehouse=HF"], STATE)
        helpers.append(canned)
        helpers.append(start_passthrough(canned_url, CANNED_PASSTHROUGH_PORT))
        config = stack.write_gateway_config(STATE / "gateway-canned.yaml", {
            "upstream.url": canned_url, "audit.spool_file": str(STATE / "canned.spool")})
        gateway = stack.start_extra_proxy("proxy-canned", CANNED_GATEWAY_PORT, [], config)
        measure("picker.hf: GET /api/picking/tasks in front of a WMS answering from memory (the proxy saturates)",
                {"direct WMS": canned_url + "/api/picking/tasks?page_size=20&warehouse=HF",
                 "bare pass-through": f"http://127.0.0.1:{CANNED_PASSTHROUGH_PORT}/api/picking/tasks?page_size=20",
                 "gateway": gateway + "/api/picking/tasks?page_size=20"},
                f"Bearer {token(stack, 'picker.hf')}", args, paced=False)
        print("\nsingle runs on a shared 2-core machine: repeat to see the spread.")

if __name__ == "__main__":
    main()
