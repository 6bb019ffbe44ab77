"""Several proxy processes on one store (issue "Scale out and deploy"): a second proxy on
another port sharing the stack's store (PostgreSQL when WMSGATE_TEST_DB=postgresql), and
``wmsgate proxy --workers 2`` on one port."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.grants import password_token
from tests.support.stack import Stack, assert_refused
from wmsgate.tools import REPO

SECOND_PORT_OFFSET = 5  # the stack's proxy port + 5
WORKERS_PORT_OFFSET = 6


@pytest.fixture(scope="module")
def second_proxy(stack: Stack) -> Iterator[str]:
    """A second proxy process on its own port, same config and store as the stack's."""
    port = stack.stack.settings.ports.proxy + SECOND_PORT_OFFSET
    url = stack.stack.start_extra_proxy("proxy-2", port, ["--worker-index", "1"])
    try:
        yield url
    finally:
        stack.stack.stop_service("proxy-2")


def test_a_revocation_made_through_one_proxy_is_enforced_by_the_other_within_a_second(
        stack: Stack, second_proxy: str, throwaway_user: Callable[..., tuple[str, str]]) -> None:
    username, user_id = throwaway_user("scale")
    admin = stack.keycloak_admin()
    admin.assign_realm_roles(user_id, [admin.get_realm_role("picker")])
    admin.update_user(user_id, {"attributes": {"wms_warehouse": ["HF"], "wms_channel": ["*"],
                                               "wms_order_type": ["*"]}})
    token = password_token(stack, username)
    with httpx.Client(base_url=second_proxy, headers={"Authorization": f"Bearer {token}"}, timeout=30) as person:
        assert person.get("/api/picking/tasks").status_code == 200
        with stack.client("admin1") as admin1:  # through the first proxy
            done = admin1.post("/_gateway/access/offboard", json={"username": username, "reason": "scale-out test"})
        assert done.status_code == 200, done.text
        answered = time.monotonic()
        while True:
            resp = person.get("/api/picking/tasks")
            if resp.status_code == 401:
                break
            assert time.monotonic() - answered < 1.0, "the second proxy still accepts the revoked token"
            time.sleep(0.05)
    assert_refused(resp, 401, "token_revoked")
    record = stack.audit_record(resp.headers["X-Decision-Id"])
    assert (record["username"], record["user_id"]) == (username, user_id)  # the trail names who tried


def test_an_approval_requested_through_one_proxy_is_approved_through_the_other_and_runs_once(
        stack: Stack, second_proxy: str) -> None:
    with stack.wms() as wms:
        batch = wms.get("/api/batches", params={"warehouse": "HF", "page_size": 1, "page": 20}).json()["items"][0]
    path = f"/api/batches/{batch['batch_no']}"
    mark = stack.access_log.mark()
    with stack.client("keeper.hf") as keeper:  # first proxy
        held = keeper.patch(path, json={"lot": "LOT-SCALE"})
    assert held.status_code == 202, held.text
    location = held.headers["Location"]
    token = stack.tokens.mfa("supervisor")

    def approve(base: str) -> int:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as supervisor:
            return supervisor.post(f"{location}/approve").status_code

    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # both proxies at once: one wins, once
        codes = sorted(pool.map(approve, [second_proxy, second_proxy, stack.proxy]))
    assert codes.count(200) == 1 and set(codes) <= {200, 403, 409}, codes  # late ones: not pending any more
    with httpx.Client(base_url=second_proxy, headers={"Authorization": f"Bearer {token}"}, timeout=30) as sup:
        doc = sup.get(location).json()
    assert doc["status"] == "executed" and doc["result"]["status"] == 200
    replays = [e for e in stack.access_log.since(mark) if e["path"] == path and e["headers"].get("x-wms-approval-id")]
    assert len(replays) == 1
    with stack.wms() as wms:
        assert wms.get(path).json()["lot"] == "LOT-SCALE"


def test_the_audit_chain_stays_valid_with_both_proxies_writing(stack: Stack, second_proxy: str) -> None:
    token = stack.tokens.get("picker.hf")  # once: the token cache is not shared across threads

    def traffic(base: str) -> list[str]:
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as picker:
            return [picker.get("/api/picking/tasks", params={"page_size": 1}).headers["X-Decision-Id"]
                    for _ in range(60)]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ids = [i for batch in pool.map(traffic, [stack.proxy, second_proxy] * 2) for i in batch]
    for decision_id in (ids[0], ids[-1]):
        stack.audit_record(decision_id)  # both proxies' records are in the one trail
    time.sleep(1.5)  # let both writers flush and checkpoint
    public_key = stack.stack.settings.state / "audit-signing-key.pub"
    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "audit", "verify", "--db", stack.stack.audit_url,
                          "--public-key", str(public_key)], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr


def _worker_pids(base: str, want: int, timeout: float = 30.0) -> set[int]:
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        try:  # a fresh connection each time: the kernel spreads them over the workers
            resp = httpx.get(f"{base}/_gateway/health", timeout=5, headers={"Connection": "close"})
            seen.add(int(resp.json()["process"]["pid"]))
        except httpx.HTTPError:
            pass
    return seen


def test_workers_share_one_port_and_a_dead_worker_is_replaced(stack: Stack) -> None:
    port = stack.stack.settings.ports.proxy + WORKERS_PORT_OFFSET
    base = stack.stack.start_extra_proxy("proxy-workers", port, ["--workers", "2"])
    try:
        pids = _worker_pids(base, 2)
        assert len(pids) == 2, f"one port, two processes expected; saw {pids}"
        indexes = {Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-2] for pid in pids}
        assert indexes == {b"0", b"1"}  # --worker-index i: each keeps its own audit spool
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        with stack.client("picker.hf") as picker:
            picker.base_url = httpx.URL(base)
            ok = [picker.get("/api/picking/tasks", params={"page_size": 1}, headers={"Connection": "close"})
                  .status_code for _ in range(20)]
        assert ok.count(200) >= 10  # the other worker keeps serving meanwhile
        replaced = _worker_pids(base, 2, timeout=30)
        assert len(replaced) == 2 and victim not in replaced, replaced
    finally:
        stack.stack.stop_service("proxy-workers")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{base}/_gateway/health", timeout=3)  # SIGTERM to the supervisor stopped every worker
