"""Issue 17, export control through the real proxy: an export above the policy's row threshold
needs a reason, every row carries a watermark, and `wmsgate audit find-export` names who exported
a leaked file from it."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from tests.support.stack import Stack, assert_refused
from wmsgate.tools import REPO


def _find_export(stack: Stack, file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wmsgate.cli", "audit", "find-export", str(file), "--db",
                           stack.audit.url], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_a_large_export_needs_a_reason_and_a_leaked_file_names_its_exporter(stack: Stack, tmp_path: Path) -> None:
    with stack.client("finance") as finance:
        refused = finance.get("/api/reports/sales.csv")
        exported = finance.get("/api/reports/sales.csv", headers={"X-Export-Reason": quote("月度对账 / month-end")})
    body = assert_refused(refused, 428, "export_reason_required")
    assert "X-Export-Reason" in body["reason_zh"] and "more than 20 rows" in body["reason_en"]
    assert exported.status_code == 200, exported.text
    decision_id = exported.headers["X-Decision-Id"]
    assert exported.headers["X-Export-Watermark"] == f"wmsgate:{decision_id}"
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) > 20 and all(row["wmsgate_watermark"] == f"wmsgate:{decision_id}" for row in rows)
    record = stack.audit_record(decision_id)
    detail = record["detail"] if isinstance(record["detail"], dict) else json.loads(record["detail"])
    assert detail["export"] == {"rows": len(rows), "reason": "月度对账 / month-end", "unmasked_pii": [],
                                "watermark": f"wmsgate:{decision_id}"}
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
