"""Issue 17, export control through the real proxy: an export above the policy's row threshold
needs a reason, above a larger one a second person's approval (four-eyes) before its requester
can download it once, every row carries a watermark, and `wmsgate audit find-export` names who
exported a leaked file from it. (Demo thresholds: reason above 20 rows, approval above 40; the
unfiltered sales export has 48 rows, one channel's 8.)"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.support.stack import Stack, assert_refused
from wmsgate.tools import REPO


def _find_export(stack: Stack, file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wmsgate.cli", "audit", "find-export", str(file), "--db",
                           stack.audit.url], cwd=REPO, capture_output=True, text=True, timeout=120)


def _detail(record: dict[str, Any]) -> dict[str, Any]:
    return record["detail"] if isinstance(record["detail"], dict) else json.loads(record["detail"])


def _approved_export(stack: Stack, reason: str) -> tuple[str, dict[str, Any]]:
    """finance asks for the whole sales export (48 rows) with ``reason``; it is held and the ops
    supervisor approves it. Returns the approval id and the 202 answer."""
    with stack.client("finance") as finance:
        held = finance.get("/api/reports/sales.csv", headers={"X-Export-Reason": quote(reason)})
    assert held.status_code == 202, held.text
    answer = held.json()
    assert answer["operation"] == "large_export" and answer["export"]["rows"] == 48
    with stack.client("supervisor", mfa=True) as supervisor:
        approved = supervisor.post(f"/_gateway/approvals/{answer['approval_id']}/approve",
                                   json={"comment": "核对过用途 / purpose checked"})
    assert approved.status_code == 200, approved.text
    return answer["approval_id"], answer


def test_a_large_export_needs_a_reason_and_a_leaked_file_names_its_exporter(stack: Stack, tmp_path: Path) -> None:
    with stack.client("finance") as finance:
        refused = finance.get("/api/reports/sales.csv")
    body = assert_refused(refused, 428, "export_reason_required")
    assert "X-Export-Reason" in body["reason_zh"] and "more than 20 rows" in body["reason_en"]
    approval_id, _ = _approved_export(stack, "月度对账 / month-end")
    with stack.client("finance") as finance:
        exported = finance.get("/api/reports/sales.csv", headers={"X-Export-Approval": approval_id})
    assert exported.status_code == 200, exported.text
    decision_id = exported.headers["X-Decision-Id"]
    assert exported.headers["X-Export-Watermark"] == f"wmsgate:{decision_id}"
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 48 and all(row["wmsgate_watermark"] == f"wmsgate:{decision_id}" for row in rows)
    record = stack.audit_record(decision_id)
    assert record["approval_id"] == approval_id and _detail(record)["high_risk"] == "large_export"
    assert _detail(record)["export"] == {"rows": 48, "reason": "月度对账 / month-end", "unmasked_pii": [],
                                         "watermark": f"wmsgate:{decision_id}", "approval_id": approval_id}
    refused_record = stack.audit_record(refused.json()["decision_id"])
    assert refused_record["http_status"] == 428 and refused_record["reason_code"] == "export_reason_required"

    leaked = tmp_path / "转发的表格.csv"  # someone forwards a few rows of it
    leaked.write_text("\n".join(exported.text.splitlines()[3:8]) + "\n", encoding="utf-8")
    out = _find_export(stack, leaked)
    assert out.returncode == 0, out.stdout + out.stderr
    assert decision_id in out.stdout and "finance" in out.stdout and "月度对账" in out.stdout
    assert "/api/reports/sales.csv" in out.stdout and f"{len(rows)} rows" in out.stdout

    clean = tmp_path / "clean.csv"
    clean.write_text("channel,revenue\r\namazon,1\r\n", encoding="utf-8")
    assert _find_export(stack, clean).returncode == 1
    forged = tmp_path / "forged.csv"
    forged.write_text(f"a,wmsgate_watermark\r\n1,wmsgate:{'e' * 32}\r\n", encoding="utf-8")
    out = _find_export(stack, forged)
    assert out.returncode == 1 and "not in the audit trail" in out.stdout


def test_a_small_export_within_scope_needs_no_reason(stack: Stack) -> None:
    with stack.client("ops.amazon") as ops:
        resp = ops.get("/api/reports/sales.csv", params={"channel": "amazon"})
    assert resp.status_code == 200, resp.text
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert 0 < len(rows) <= 20 and {r["channel"] for r in rows} == {"amazon"}
    assert all(r["wmsgate_watermark"] == f"wmsgate:{resp.headers['X-Decision-Id']}" for r in rows)


def test_a_held_export_is_handed_out_only_to_its_requester_once_approved_and_only_once(stack: Stack) -> None:
    reason = "季度审计 / quarterly audit"
    with stack.client("finance") as finance:
        held = finance.get("/api/reports/sales.csv", headers={"X-Export-Reason": quote(reason)})
        assert held.status_code == 202, held.text
        approval_id = held.json()["approval_id"]
        assert "X-Export-Approval" in held.json()["reason_en"] and "X-Export-Approval" in held.json()["reason_zh"]
        early = finance.get("/api/reports/sales.csv", headers={"X-Export-Approval": approval_id})
        assert "not approved" in assert_refused(early, 409, "export_approval_unusable")["reason_en"]
    held_record = stack.audit_record(held.json()["decision_id"])
    assert held_record["http_status"] == 202 and held_record["approval_id"] == approval_id
    assert _detail(held_record)["export_held"] == {"rows": 48, "reason": reason, "unmasked_pii": []}
    assert _detail(held_record)["high_risk"] == "large_export"  # the alerting service reports it
    with stack.client("supervisor", mfa=True) as supervisor:
        inbox = supervisor.get("/_gateway/approvals").json()["to_decide"]
        [doc] = [a for a in inbox if a["approval_id"] == approval_id]
        assert doc["export"] == {"rows": 48, "reason": reason, "unmasked_pii": []}  # what the approver judges
        assert supervisor.post(f"/_gateway/approvals/{approval_id}/approve").status_code == 200
        status = supervisor.get(f"/_gateway/approvals/{approval_id}").json()["status"]
        assert status == "approved"  # the gateway does not run it: its requester downloads it

    with stack.client("ops.amazon") as other:  # someone else's approval opens nothing
        stolen = other.get("/api/reports/sales.csv", params={"channel": "amazon"},
                           headers={"X-Export-Approval": approval_id})
        assert_refused(stolen, 404, "export_approval_not_found")
    with stack.client("finance") as finance:
        doc = finance.get(f"/_gateway/approvals/{approval_id}").json()
        assert doc["download"]["header"] == {"X-Export-Approval": approval_id} and doc["download"]["until"]
        other_line = finance.get("/api/reports/sales.csv", params={"channel": "jd"},
                                 headers={"X-Export-Approval": approval_id})
        assert "/api/reports/sales.csv" in assert_refused(other_line, 409, "export_approval_unusable")["reason_en"]
        assert doc["download"]["url"] == f"/api/reports/sales.csv?wmsgate_export_approval={approval_id}"
        mark = stack.access_log.mark()
        first = finance.get(doc["download"]["url"])  # the link form a browser follows
        again = finance.get("/api/reports/sales.csv", headers={"X-Export-Approval": approval_id})
        assert first.status_code == 200 and len(list(csv.DictReader(io.StringIO(first.text)))) == 48
        [seen] = [e for e in stack.access_log.since(mark) if "sales.csv" in e["path"]]
        assert seen["path"] == "/api/reports/sales.csv"  # the gateway's parameter never reaches the WMS
        assert "already downloaded" in assert_refused(again, 409, "export_approval_unusable")["reason_en"]
        after = finance.get(f"/_gateway/approvals/{approval_id}").json()
    assert after["status"] == "executed" and "download" not in after
