"""Benchmark: how long after an offboarding call the proxy refuses the person's token.

Starts its own stack on 127.0.0.1 (ports +20000, state in .state/bench-offboard), creates
N temporary pickers, and for each one: keeps sending requests with their valid token,
calls ``POST /_gateway/access/offboard`` as admin1, and records the time from the start
of that call to the first 401 the person gets. Prints the median and maximum (ms).
Bounded: N people, each watched for at most 10 s.

Usage: .venv/bin/python bench/offboard_latency.py [--people 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import shutil
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import pyotp

from keycloak import KeycloakAdmin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wmsgate.devstack import LocalStack, Ports, StackSettings
from wmsgate.tools import REPO


def _token(issuer: str, username: str) -> str:
    resp = httpx.post(f"{issuer}/protocol/openid-connect/token", data={
        "grant_type": "password", "client_id": "wms-cli", "username": username, "password": "wms-demo"})
    resp.raise_for_status()
    return str(resp.json()["access_token"])


async def _one(stack: LocalStack, admin_token: str, username: str, token: str) -> float:
    """Milliseconds from the offboard call's start to the person's first 401."""
    refused = asyncio.Event()
    refused_at = 0.0
    async with aiohttp.ClientSession() as session:
        async def watch() -> None:
            nonlocal refused_at
            deadline = time.perf_counter() + 10
            while time.perf_counter() < deadline:
                async with session.get(f"{stack.proxy_url}/api/picking/tasks?page_size=1",
                                       headers={"Authorization": f"Bearer {token}"}) as resp:
                    await resp.read()
                    if resp.status == 401:
                        refused_at = time.perf_counter()
                        refused.set()
                        return
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        async with session.post(f"{stack.proxy_url}/_gateway/access/offboard",
                                json={"username": username, "reason": "benchmark"},
                                headers={"Authorization": f"Bearer {admin_token}"}) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        await asyncio.wait_for(refused.wait(), timeout=10)
        await watcher
    return (refused_at - started) * 1000


def main() -> None:
    """Run and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=20)
    args = parser.parse_args()
    state = REPO / ".state" / "bench-offboard"
    shutil.rmtree(state, ignore_errors=True)
    stack = LocalStack(StackSettings(state=state, ports=Ports.offset(20000)))
    print("starting the stack ...", flush=True)
    stack.start()
    try:
        admin = KeycloakAdmin(server_url=stack.keycloak_url + "/", username="kcadmin", password="kcadmin-demo",
                              realm_name="wms", user_realm_name="master")
        picker = admin.get_realm_role("picker")
        names = [f"bench.picker{i:02d}" for i in range(args.people)]
        for name in names:
            user_id = admin.create_user({"username": name, "enabled": True, "firstName": "压测", "lastName": "拣货",
                                         "email": f"{name}@example.com", "emailVerified": True,
                                         "attributes": {"wms_warehouse": ["HF"], "wms_channel": ["*"],
                                                        "wms_order_type": ["*"]},
                                         "credentials": [{"type": "password", "value": "wms-demo",
                                                          "temporary": False}]})
            admin.assign_realm_roles(user_id, [picker])
        code = pyotp.TOTP(base64.b32encode(b"wms-demo-totp-secret").decode()).now()  # admin1 has an OTP
        admin_token = httpx.post(f"{stack.issuer}/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "wms-cli", "username": "admin1", "password": "wms-demo",
            "totp": code}).json()["access_token"]
        latencies = []
        for name in names:
            latencies.append(asyncio.run(_one(stack, admin_token, name, _token(stack.issuer, name))))
        print(f"offboard -> first refusal of a held token, {len(latencies)} people, one proxy process, "
              f"requests every ~5 ms:")
        print(f"  median {statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms, "
              f"min {min(latencies):.1f} ms (target: within 1000 ms)")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
