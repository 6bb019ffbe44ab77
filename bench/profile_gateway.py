"""Profile: where a gateway request's CPU time goes, stage by stage. Prints figures; asserts nothing.

Starts its own stack on 127.0.0.1 (ports +20000, state in .state/bench), loads the gateway with
wrk (closed loop) on one endpoint and samples the proxy process with py-spy meanwhile (no
restart, no instrumentation). Each sample is charged to the innermost frame that belongs to a
stage of the request path (below), so a library call (joserfc, wasmtime, SQLAlchemy, json) counts
for the stage that made it; samples with no gateway frame are aiohttp's HTTP server and the event
loop. Prints each stage's share of the process's CPU and its cost per request (microseconds).

Usage: .venv/bin/python bench/profile_gateway.py [--seconds 15] [--user finance] [--path /api/orders/SO2024110100005]
       [--rate 200] [--sidecar] [--canned WMS_PATH] [--svg profile.svg]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchstack import STATE, answered, bench_stack, proxy_pid, start_canned_wms, token
from bench.loadgen import Load, run_wrk, wrk_path

#: (stage, pattern on a frame's file path), innermost match wins; order breaks ties inside one frame.
STAGES: list[tuple[str, str]] = [
    ("hygiene", r"proxy/hygiene\.py"),
    ("authenticate (JWT, revocation)", r"authorizer/authn/|proxy/sso\.py"),
    ("route match", r"authorizer/authz/routes\.py"),
    ("attribute lookup", r"authorizer/authz/attributes\.py|authorizer/authz/tenancy\.py"),
    ("policy input", r"authorizer/authz/policy_input\.py|authorizer/authz/query_params\.py"),
    ("decision (PDP)", r"authorizer/authz/(pdp|inprocess_pdp|opa_wasm|gofmt)\.py"),
    ("masking and row filter", r"authorizer/enforce/|proxy/upstream_answer\.py"),
    ("forward (WMS request and answer)", r"proxy/forward\.py|proxy/upstream_identity\.py"),
    ("audit record, chain, insert", r"authorizer/audit/|proxy/gateway\.py|aiosqlite/"),
    ("metrics", r"proxy/metrics\.py|prometheus_client/"),
    ("request path glue", r"proxy/(pipeline|lifecycle|responses|messages)\.py"),
    ("HTTP server (aiohttp)", r"aiohttp/web_|aiohttp/_http_parser|aiohttp/http_"),
]
_FRAME = re.compile(r"\((?P<file>[^:()]+)(?::\d+)?\)$")


def stage_of(stack: str) -> str:
    """The stage a collapsed py-spy stack (``f (file:line);g (file:line)``) is charged to."""
    frames = stack.split(";")
    for frame in reversed(frames):
        found = _FRAME.search(frame)
        path = found.group("file") if found else frame
        for stage, pattern in STAGES:
            if re.search(pattern, path):
                return stage
    return "event loop and other"


def cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` has used (user + system, all threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile(pid: int, seconds: float, out: Path, svg: Path | None) -> None:
    """Sample ``pid`` with py-spy for ``seconds`` into collapsed stacks at ``out`` (and a flame graph).

    Only the thread holding the GIL is sampled (``--gil``): that is the time that bounds how many
    requests one Python process serves; a thread waiting on I/O or inside SQLite with the GIL
    released does not count."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    subprocess.run([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250",
                    "--format", "raw", "--output", str(out), "--gil"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if svg is not None:
        subprocess.run([py_spy, "record", "--pid", str(pid), "--duration", "5", "--rate", "250", "--output", str(svg)],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    """Run the load, sample, print the breakdown."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=None,
                        help="offered req/s (paced) instead of closed loop: CPU per request on an unsaturated machine")
    parser.add_argument("--user", default="finance")
    parser.add_argument("--path", default="/api/orders/SO2024110100005")
    parser.add_argument("--sidecar", action="store_true", help="decide with the OPA sidecar, not in-process")
    parser.add_argument("--canned", default=None, metavar="WMS_PATH",
                        help="put the gateway in front of a WMS answering from memory with the demo WMS's answer "
                             "to WMS_PATH (the request as the gateway sends it), so the proxy saturates")
    parser.add_argument("--detail", type=int, default=0, metavar="N",
                        help="also print the N hottest innermost frames of each of the four biggest stages")
    parser.add_argument("--svg", type=Path, default=None, help="also write a flame graph (a separate 5 s sample)")
    args = parser.parse_args()
    wrk_path()
    overrides: dict[str, object] = {"opa.evaluation": "sidecar"} if args.sidecar else {}
    with bench_stack(overrides) as (stack, helpers):
        auth = f"Bearer {token(stack, args.user)}"
        url = stack.proxy_url + args.path
        if args.canned:
            canned, canned_url = start_canned_wms(stack, [args.canned], STATE)
            helpers.append(canned)
            stack.restart_proxy({"upstream.url": canned_url})
        run_wrk(url, 2, 8, auth)  # warm-up
        result: dict[str, Load] = {}
        load = threading.Thread(target=lambda: result.update(
            load=run_wrk(url, 2 * args.seconds + 6, args.connections, auth, rate=args.rate)))
        load.start()
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "profile.txt"
            pid = proxy_pid(stack)
            opa = next(s.process.pid for s in stack.services if s.name == "opa" and s.process is not None)
            time.sleep(1)
            # CPU per request unsampled (py-spy's stops cost the process CPU too), then the samples
            cpu_before, wall_before, done_before = cpu_seconds(pid), time.monotonic(), answered(stack)
            opa_before = cpu_seconds(opa)
            time.sleep(args.seconds)
            cpu_used, wall = cpu_seconds(pid) - cpu_before, time.monotonic() - wall_before
            opa_used, requests = cpu_seconds(opa) - opa_before, answered(stack) - done_before
            profile(pid, args.seconds, raw, None)
            if args.svg is not None:
                profile(pid, 5, Path(tmp) / "unused.txt", args.svg)
            load.join()
            samples: collections.Counter[str] = collections.Counter()
            frames: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
            for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
                stack_text, _, count = line.rpartition(" ")
                if count.isdigit():
                    stage = stage_of(stack_text)
                    samples[stage] += int(count)
                    frames[stage][" <- ".join(stack_text.split(";")[-1:-3:-1])] += int(count)
        total = sum(samples.values())
        served = result["load"]
        gil_busy = total / 250 / args.seconds  # py-spy samples at 250 Hz; only while a thread holds the GIL
        per_request_us = cpu_used / requests * 1e6 if requests else float("nan")
        print(f"{args.user} {args.path}: {requests / wall:.0f} req/s through the gateway ({served.rps:.0f} over the "
              f"whole run, sampled half included); the proxy used {cpu_used / wall * 100:.0f}% of a core "
              f"({per_request_us:.0f} us of CPU per request); while sampled the GIL was held "
              f"{gil_busy * 100:.0f}% of the time")
        print(f"  OPA used {opa_used / wall * 100:.0f}% of a core meanwhile "
              f"({opa_used / requests * 1e6 if requests else float('nan'):.0f} us of CPU per request)")
        print("  stages by their share of the GIL samples; us/request = that share of the CPU per request")
        print(f"  {'stage':38}{'share':>8}{'us/request':>12}")
        for stage, count in samples.most_common():
            print(f"  {stage:38}{count / total * 100:7.1f}%{per_request_us * count / total:12.0f}")
        for stage, _ in samples.most_common(4 if args.detail else 0):
            print(f"\n  {stage}: hottest innermost frames (share of all samples)")
            for frame, count in frames[stage].most_common(args.detail):
                print(f"    {count / total * 100:5.1f}%  {frame[:150]}")

if __name__ == "__main__":
    main()
