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

Usage: .venv/bin/python bench/proxy_overhead.py [--seconds 8] [--rate 1000] [--connections 32] [--sidecar]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import Load, run_wrk, wrk_path
from wmsgate.devstack import LocalStack, Ports, StackSettings
from wmsgate.tools import REPO

PORTS = Ports.offset(20000)
PASSTHROUGH_PORT = PORTS.proxy + 19  # 28099
CANNED_PORT = PORTS.proxy + 18  # 28098: the canned WMS
CANNED_PASSTHROUGH_PORT = PORTS.proxy + 17  # 28097: a pass-through in front of it
CANNED_GATEWAY_PORT = PORTS.proxy + 16  # 28096: a gateway in front of it


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def proxy_pid(stack: LocalStack) -> int:
    """The gateway process of ``stack``."""
    proc = next(s.process for s in stack.services if s.name == "proxy")
    assert proc is not None
    return proc.pid


def token(stack: LocalStack, username: str) -> str:
    """An access token of a demo user (password grant)."""
    resp = httpx.post(f"{stack.issuer}/protocol/openid-connect/token",
                      data={"grant_type": "password", "client_id": "wms-cli", "username": username,
                            "password": "wms-demo"})
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def answered(stack: LocalStack) -> int:
    """Requests the gateway has answered (the sum of ``wmsgate_requests_total``)."""
    text = httpx.get(f"http://127.0.0.1:{stack.settings.ports.gateway_management}/metrics", timeout=10).text
    return int(sum(float(m) for m in re.findall(r"^wmsgate_requests_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)))


def start_process(argv: list[str], port: int) -> subprocess.Popen[bytes]:
    """A helper server (pass-through, canned WMS) on 127.0.0.1:``port``, once it answers."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{argv[1]} did not start")


def start_passthrough(upstream: str, port: int = PASSTHROUGH_PORT) -> subprocess.Popen[bytes]:
    """The bare pass-through in front of ``upstream``."""
    return start_process([sys.executable, str(REPO / "bench" / "passthrough.py"), "--port", str(port),
                          "--upstream", upstream], port)


def start_canned_wms(stack: LocalStack, paths: list[str], state: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The canned WMS serving the demo WMS's answers to ``paths`` (recorded now); its base URL."""
    answers = {}
    for path in paths:
        resp = httpx.get(stack.wms_url + path, timeout=30)
        answers[path.split("?", 1)[0]] = {"status": resp.status_code, "body": resp.text,
                                          "content_type": resp.headers["Content-Type"].split(";")[0]}
    recorded = state / "canned-answers.json"
    recorded.write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8")
    proc = start_process([sys.executable, str(REPO / "bench" / "canned_wms.py"), "--port", str(CANNED_PORT),
                          "--answers", str(recorded)], CANNED_PORT)
    return proc, f"http://127.0.0.1:{CANNED_PORT}"


def row(name: str, load: Load) -> str:
    """One table row."""
    return (f"  {name:34}{load.rps:10.0f}{load.p50:10.2f}{load.p99:10.2f}"
            f"{load.errors + load.non2xx:8d}")


def measure(title: str, urls: dict[str, str], auth: str, args: argparse.Namespace, paced: bool = True) -> None:
    """Load each of ``urls`` (direct WMS, bare pass-through, gateway), print the table and ratios."""
    run_wrk(urls["gateway"], 2, 8, auth)  # warm-up (caches, connections)
    closed = {name: run_wrk(url, args.seconds, args.connections, auth if name == "gateway" else "")
              for name, url in urls.items()}
    print(title)
    print(f"  {'':34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, load in closed.items():
        print(row(f"{name}, closed loop", load))
    if paced:
        paced_loads = {name: run_wrk(url, args.seconds, 16, auth if name == "gateway" else "", rate=args.rate)
                       for name, url in urls.items()}
        for name, load in paced_loads.items():
            print(row(f"{name} @ {args.rate:.0f}/s offered", load))
    ratio = closed["gateway"].rps / closed["bare pass-through"].rps
    print(f"  throughput ratio gateway / pass-through: {ratio:.2f} (target >= 0.70); "
          f"gateway / direct: {closed['gateway'].rps / closed['direct WMS'].rps:.2f}")
    if paced:
        g, b, d = paced_loads["gateway"], paced_loads["bare pass-through"], paced_loads["direct WMS"]
        print(f"  added at {args.rate:.0f} req/s over the pass-through: p50 {g.p50 - b.p50:+.2f} ms, "
              f"p99 {g.p99 - b.p99:+.2f} ms (targets: 1 / 3); over the WMS: p50 {g.p50 - d.p50:+.2f} ms, "
              f"p99 {g.p99 - d.p99:+.2f} ms")


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sidecar", action="store_true", help="decide with the OPA sidecar, not in-process")
    args = parser.parse_args()
    wrk_path()  # fail early, with how to install it
    state = REPO / ".state" / "bench"
    shutil.rmtree(state, ignore_errors=True)
    overrides: dict[str, object] = {"opa.evaluation": "sidecar"} if args.sidecar else {}
    stack = LocalStack(StackSettings(state=state, ports=PORTS, proxy_overrides=overrides))
    print("starting the stack ...", flush=True)
    stack.start()
    helpers = [start_passthrough(stack.wms_url)]
    try:
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
        for title, user, path, direct_path in endpoints:
            measure(title, {"direct WMS": stack.wms_url + direct_path,
                            "bare pass-through": passthrough_url + direct_path,
                            "gateway": stack.proxy_url + path}, f"Bearer {token(stack, user)}", args)
            print(f"  gateway RSS after run: {rss_mib(proxy_pid(stack)):.1f} MiB\n", flush=True)
        # The demo WMS saturates first on list pages: in front of a WMS answering from memory the
        # gateway (or the pass-through) is what saturates, so its per-process throughput shows.
        canned, canned_url = start_canned_wms(stack, ["/api/picking/tasks?page_size=20&warehouse=HF"], state)
        helpers.append(canned)
        helpers.append(start_passthrough(canned_url, CANNED_PASSTHROUGH_PORT))
        config = stack.write_gateway_config(state / "gateway-canned.yaml", {
            "upstream.url": canned_url, "audit.spool_file": str(state / "canned.spool")})
        gateway = stack.start_extra_proxy("proxy-canned", CANNED_GATEWAY_PORT, [], config)
        measure("picker.hf: GET /api/picking/tasks in front of a WMS answering from memory (the proxy saturates)",
                {"direct WMS": canned_url + "/api/picking/tasks?page_size=20&warehouse=HF",
                 "bare pass-through": f"http://127.0.0.1:{CANNED_PASSTHROUGH_PORT}/api/picking/tasks?page_size=20",
                 "gateway": gateway + "/api/picking/tasks?page_size=20"},
                f"Bearer {token(stack, 'picker.hf')}", args, paced=False)
        print("\nsingle runs on a shared 2-core machine: repeat to see the spread.")
    finally:
        for helper in helpers:
            helper.terminate()
            helper.wait(10)
        stack.stop()


if __name__ == "__main__":
    main()
