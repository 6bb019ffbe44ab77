"""The audit trail the real proxy writes is a verifiable hash chain (issue "Audit trail", cases 1-2)."""

from __future__ import annotations

import csv
import getpass
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.support.stack import Stack
from wmsgate.tools import REPO


def _verify(stack: Stack, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    public_key = stack.stack.settings.state / "audit-signing-key.pub"
    return subprocess.run([sys.executable, "-m", "wmsgate.cli", "audit", "verify", "--db", url,
                           "--public-key", str(public_key), *extra], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def _traffic(stack: Stack, n: int) -> None:
    with stack.client("picker.hf") as c:
        for _ in range(n):
            c.get("/api/picking/tasks", params={"page_size": 1})
        last = c.get("/api/reports/finance")
    stack.audit_record(last.json()["decision_id"])


def test_the_proxys_trail_verifies_with_signed_checkpoints(stack: Stack) -> None:
    _traffic(stack, 5)
    time.sleep(1.5)  # the test stack signs a checkpoint every second
    _traffic(stack, 1)
    out = _verify(stack, stack.audit.snapshot())
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("OK:") and "checkpoints" in out.stdout


def test_case_1_a_record_altered_by_hand_is_named(stack: Stack) -> None:
    _traffic(stack, 3)
    url = stack.audit.snapshot()
    [row] = stack.audit.sql("SELECT seq, decision_id FROM audit_records WHERE decision = 'deny' "
                            "ORDER BY seq DESC LIMIT 1", url=url)
    seq, decision_id = row["seq"], row["decision_id"]
    stack.audit.sql("UPDATE audit_records SET decision = 'allow' WHERE seq = :s", {"s": seq}, url=url)
    out = _verify(stack, url)
    assert out.returncode == 1
    assert f"ALTERED        seq={seq} {decision_id}" in out.stdout


def test_case_2_removed_records_in_the_middle_and_at_the_end_are_reported(stack: Stack) -> None:
    _traffic(stack, 15)
    time.sleep(1.5)
    _traffic(stack, 1)
    url = stack.audit.snapshot()
    head = stack.audit.sql("SELECT MAX(seq) AS head FROM audit_checkpoints", url=url)[0]["head"]
    middle = head - 12
    stack.audit.sql("DELETE FROM audit_records WHERE seq = :s", {"s": middle}, url=url)
    stack.audit.sql("DELETE FROM audit_records WHERE seq > :s", {"s": head - 10}, url=url)
    out = _verify(stack, url)
    assert out.returncode == 1
    assert f"LINK_BROKEN    seq={middle + 1}" in out.stdout
    assert f"TRUNCATED      seq={head}" in out.stdout


def test_the_witness_catches_the_last_100_rows_and_the_newest_checkpoint_deleted(stack: Stack,
                                                                                  tmp_path: Path) -> None:
    """Issue 17: the proxy copies every checkpoint to the witness folder; deleting the newest
    records together with the checkpoints that vouch for them leaves a chain that verifies,
    but not against the witness."""
    _traffic(stack, 130)
    time.sleep(1.5)  # the checkpoint of the newest records is signed and witnessed
    witness = tmp_path / "witness"
    shutil.copytree(stack.stack.settings.state / "audit-witness", witness)  # before the snapshot: never newer
    url = stack.audit.snapshot()
    newest = max(int(f.stem.split("-")[1]) for f in witness.glob("checkpoint-*.json"))
    untouched = _verify(stack, url, "--witness", str(witness))
    assert untouched.returncode == 0, untouched.stdout + untouched.stderr
    stack.audit.sql("DELETE FROM audit_records WHERE seq > :s", {"s": newest - 100}, url=url)
    stack.audit.sql("DELETE FROM audit_checkpoints WHERE seq > :s", {"s": newest - 100}, url=url)
    chain_only = _verify(stack, url)
    assert chain_only.returncode == 0, "the chain alone cannot see a cut tail: " + chain_only.stdout
    out = _verify(stack, url, "--witness", str(witness))
    assert out.returncode == 1, out.stdout
    assert f"ROLLED_BACK    seq={newest}" in out.stdout
    assert f"the trail ends at {newest - 100}" in out.stdout


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


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wmsgate.cli", "audit", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_case_5_exports_open_as_csv_with_bom_and_the_jsonl_export_verifies(stack: Stack, tmp_path: Path) -> None:
    _traffic(stack, 3)
    time.sleep(1.5)
    _traffic(stack, 1)
    url = stack.audit.snapshot()
    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "audit", "export", "--db", url, "--format", "csv",
                          "--user", "picker.hf", "--module", "orders"], cwd=REPO, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    raw = out.stdout
    assert raw.startswith("\ufeff".encode("utf-8"))
    text = raw.decode("utf-8-sig")
    lines = text.splitlines()
    assert lines[-1].startswith("# chain head: {")
    rows = list(csv.DictReader(lines[:-1]))
    assert rows and all(r["username"] == "picker.hf" and r["module"] == "orders" for r in rows)
    searched = _cli("search", "--db", url, "--user", "picker.hf", "--module", "orders", "--limit", "100000", "--json")
    assert len(rows) == len(searched.stdout.splitlines())
    marks = {r["wmsgate_watermark"] for r in rows}  # the export is in the trail, and names its operator
    [mark] = marks
    assert mark.startswith("wmsgate:") and mark in out.stderr.decode("utf-8")
    leaked = tmp_path / "leaked.csv"
    leaked.write_text("\n".join(text.splitlines()[2:4]), encoding="utf-8")
    found = _cli("find-export", str(leaked), "--db", url)
    assert found.returncode == 0 and f"local:{getpass.getuser()}" in found.stdout, found.stdout + found.stderr

    export = tmp_path / "trail.jsonl"
    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "audit", "export", "--db", url, "--format", "jsonl"],
                         cwd=REPO, capture_output=True, timeout=120)
    export.write_bytes(out.stdout)
    public_key = str(stack.stack.settings.state / "audit-signing-key.pub")
    ok = _cli("verify-export", str(export), "--public-key", public_key)
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout
    tampered = export.read_text(encoding="utf-8").replace('"decision": "deny"', '"decision": "allow"', 1)
    export.write_text(tampered, encoding="utf-8")
    bad = _cli("verify-export", str(export), "--public-key", public_key)
    assert bad.returncode == 1 and "ALTERED" in bad.stdout


def test_case_6_anomaly_queries_find_seeded_patterns(stack: Stack) -> None:
    order = stack.order(warehouse="HF", status="exception")
    with stack.client("keeper.hf") as keeper:
        for status in ("pending_pick", "exception", "pending_pick", "exception", "pending_pick"):
            assert keeper.patch(f"/api/orders/{order['order_no']}", json={"status": status}).status_code == 200
    with stack.wms() as wms:
        rows = wms.get("/api/inventory", params={"warehouse": "HF", "page": 5, "page_size": 30}).json()["items"]
    with stack.client("keeper.hf", mfa=True) as keeper, stack.client("supervisor", mfa=True) as supervisor:
        for row in rows:
            held = keeper.delete(f"/api/inventory/HF/{row['location']}/{row['sku']}")
            assert held.status_code == 202, held.text
            done = supervisor.post(f"{held.headers['Location']}/approve").json()
            assert done["status"] == "executed" and done["result"]["status"] == 204
    out = _cli("anomalies", "--db", stack.audit.url, "--since", "1h", "--json")
    assert out.returncode == 0, out.stderr
    findings = [json.loads(line) for line in out.stdout.splitlines()]
    churn = [f for f in findings if f["kind"] == "order_status_churn" and f["subject"] == order["order_no"]]
    assert churn and churn[0]["count"] >= 5
    deletes = [f for f in findings if f["kind"] == "bulk_inventory_deletes" and f["subject"] == "keeper.hf"]
    assert deletes and deletes[0]["count"] >= 30


def test_archiving_the_proxys_trail_keeps_it_verifiable(stack: Stack, tmp_path: Path) -> None:
    _traffic(stack, 5)
    time.sleep(1.5)  # a checkpoint covers these
    _traffic(stack, 2)
    url = stack.audit.snapshot()
    state = stack.stack.settings.state
    archive = tmp_path / "archive"
    out = _cli("archive", "--db", url, "--older-than", "0s", "--archive-dir", str(archive),
               "--private-key", str(state / "audit-signing-key.pem"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "segment(s) archived" in out.stdout and not out.stdout.startswith("0 segment")
    files = sorted(archive.glob("audit-*.jsonl"))
    assert files
    left = stack.audit.sql("SELECT COUNT(*) AS n FROM audit_records", url=url)[0]["n"]
    assert left >= 1
    verified = _cli("verify", "--db", url, "--public-key", str(state / "audit-signing-key.pub"),
                    "--archive-dir", str(archive))
    assert verified.returncode == 0 and verified.stdout.startswith("OK:"), verified.stdout
    for file in files:
        alone = _cli("verify-export", str(file), "--public-key", str(state / "audit-signing-key.pub"))
        assert alone.returncode == 0, alone.stdout
    first = stack.audit.sql("SELECT MIN(seq) AS s FROM audit_records", url=url)[0]["s"]
    stack.audit.sql("DELETE FROM audit_archives", url=url)  # hiding the archive is caught
    hidden = _cli("verify", "--db", url, "--public-key", str(state / "audit-signing-key.pub"))
    assert hidden.returncode == 1 and f"LINK_BROKEN    seq={first}" in hidden.stdout
