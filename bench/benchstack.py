"""What the benchmarks share: their own stack on 127.0.0.1 (ports +20000, state in .state/bench),
helper servers (the bare pass-through, the WMS answering from memory) and readings of the proxy
(tokens, requests answered, memory)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from wmsgate.devstack import LocalStack, Ports, StackSettings
from wmsgate.tools import REPO

PORTS = Ports.offset(20000)
PASSTHROUGH_PORT = PORTS.proxy + 19  # 28099
CANNED_PORT = PORTS.proxy + 18  # 28098: the canned WMS
CANNED_PASSTHROUGH_PORT = PORTS.proxy + 17  # 28097: a pass-through in front of it
CANNED_GATEWAY_PORT = PORTS.proxy + 16  # 28096: a gateway in front of it
WORKERS_GATEWAY_PORT = PORTS.proxy + 15  # 28095: a gateway of several processes (--workers)


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


def listeners(port: int) -> int:
    """Sockets listening on TCP ``port`` on this machine (from /proc/net/tcp and tcp6): with
    SO_REUSEPORT each worker of ``wmsgate proxy --workers N`` has its own."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                count += 1
    return count


def wait_for_listeners(port: int, count: int, seconds: float = 60) -> None:
    """Wait until ``count`` sockets listen on ``port`` (every worker is up, not only the first).

    Raises:
        RuntimeError: they did not within ``seconds``.
    """
    deadline = time.monotonic() + seconds
    while listeners(port) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{listeners(port)} of {count} workers listen on port {port}")
        time.sleep(0.2)


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


#: Where the benchmarks keep their stack's state.
STATE = REPO / ".state" / "bench"


Helpers = list[subprocess.Popen[bytes]]


@contextmanager
def bench_stack(overrides: dict[str, object] | None = None) -> Iterator[tuple[LocalStack, Helpers]]:
    """The benchmarks' stack, started fresh (``overrides``: gateway config values), with a list the
    caller adds helper processes to; helpers and stack are stopped on the way out."""
    shutil.rmtree(STATE, ignore_errors=True)
    stack = LocalStack(StackSettings(state=STATE, ports=PORTS, proxy_overrides=overrides or {}))
    print("starting the stack ...", flush=True)
    stack.start()
    helpers: list[subprocess.Popen[bytes]] = []
    try:
        yield stack, helpers
    finally:
        for helper in helpers:
            helper.terminate()
            helper.wait(10)
        stack.stop()
