"""The audit trail the real proxy writes is a verifiable hash chain (issue "Audit trail", cases 1-2)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.support.stack import Stack
from wmsgate.tools import REPO


def _snapshot(stack: Stack, target: Path) -> str:
    """A consistent copy of the live audit database (SQLite backup API)."""
    source = sqlite3.connect(stack.stack.audit_db)
    copy = sqlite3.connect(target)
    with copy:
        source.backup(copy)
    source.close()
    copy.close()
    return f"sqlite+aiosqlite:///{target}"


def _verify(stack: Stack, url: str) -> subprocess.CompletedProcess[str]:
    public_key = stack.stack.settings.state / "audit-signing-key.pub"
    return subprocess.run([sys.executable, "-m", "wmsgate.cli", "audit", "verify", "--db", url,
                           "--public-key", str(public_key)], cwd=REPO, capture_output=True, text=True, timeout=120)


def _traffic(stack: Stack, n: int) -> None:
    with stack.client("picker.hf") as c:
        for _ in range(n):
            c.get("/api/picking/tasks", params={"page_size": 1})
        last = c.get("/api/reports/finance")
    stack.audit_record(last.json()["decision_id"])


def test_the_proxys_trail_verifies_with_signed_checkpoints(stack: Stack, tmp_path: Path) -> None:
    _traffic(stack, 5)
    time.sleep(1.5)  # the test stack signs a checkpoint every second
    _traffic(stack, 1)
    out = _verify(stack, _snapshot(stack, tmp_path / "audit.db"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("OK:") and "checkpoints" in out.stdout


def test_case_1_a_record_altered_by_hand_is_named(stack: Stack, tmp_path: Path) -> None:
    _traffic(stack, 3)
    url = _snapshot(stack, tmp_path / "audit.db")
    conn = sqlite3.connect(tmp_path / "audit.db")
    with conn:
        seq, decision_id = conn.execute("SELECT seq, decision_id FROM audit_records WHERE decision = 'deny' "
                                        "ORDER BY seq DESC LIMIT 1").fetchone()
        conn.execute("UPDATE audit_records SET decision = 'allow' WHERE seq = ?", (seq,))
    conn.close()
    out = _verify(stack, url)
    assert out.returncode == 1
    assert f"ALTERED        seq={seq} {decision_id}" in out.stdout


def test_case_2_removed_records_in_the_middle_and_at_the_end_are_reported(stack: Stack, tmp_path: Path) -> None:
    _traffic(stack, 15)
    time.sleep(1.5)
    _traffic(stack, 1)
    url = _snapshot(stack, tmp_path / "audit.db")
    conn = sqlite3.connect(tmp_path / "audit.db")
    with conn:
        head = conn.execute("SELECT MAX(seq) FROM audit_checkpoints").fetchone()[0]
        middle = head - 12
        conn.execute("DELETE FROM audit_records WHERE seq = ?", (middle,))
        conn.execute("DELETE FROM audit_records WHERE seq > ?", (head - 10,))
    conn.close()
    out = _verify(stack, url)
    assert out.returncode == 1
    assert f"LINK_BROKEN    seq={middle + 1}" in out.stdout
    assert f"TRUNCATED      seq={head}" in out.stdout


def test_case_4_kill_9_right_after_a_high_risk_answer_loses_no_record(stack: Stack) -> None:
    with stack.wms() as wms:
        batch = wms.get("/api/batches", params={"warehouse": "HF", "page_size": 1, "page": 30}).json()["items"][0]
    try:
        with stack.client("keeper.hf") as keeper:
            held = keeper.patch(f"/api/batches/{batch['batch_no']}", json={"lot": "LOT-CRASH"})
        stack.stack.kill_proxy()
        assert held.status_code == 202
        decision_id = held.json()["decision_id"]
    finally:
        stack.stack.restart_proxy()
    record = stack.audit_record(decision_id, timeout=2)
    assert record["reason_code"] == "approval_required" and record["approval_id"] == held.json()["approval_id"]
    with stack.client("keeper.hf") as keeper:
        keeper.post(f"/_gateway/approvals/{held.json()['approval_id']}/withdraw")
