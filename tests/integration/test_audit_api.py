"""The audit trail through the management API: search and export, authorized by the policy and audited."""

from __future__ import annotations

import csv
import io

from authorizer.audit.chain import load_public_key
from authorizer.audit.export import verify_jsonl
from tests.support.stack import Stack, assert_refused


def _pick(stack: Stack) -> str:
    order = stack.order(warehouse="HF", status="pending_pick")
    with stack.client("picker.hf") as picker:
        resp = picker.post(f"/api/picking/{order['order_no']}/confirm")
    assert resp.status_code == 200
    stack.audit_record(resp.headers["X-Decision-Id"])
    return resp.headers["X-Decision-Id"]


def test_an_auditor_searches_one_persons_records_page_by_page(stack: Stack) -> None:
    mine = _pick(stack)
    with stack.client("picker.hf") as picker:
        listed = [picker.get("/api/picking/tasks", params={"page_size": 1}) for _ in range(3)]
    for resp in listed:  # paging by offset over a trail still being written would shift the pages
        stack.audit_record(resp.headers["X-Decision-Id"])
    with stack.client("admin1") as admin:
        first = admin.get("/_gateway/audit/records", params={"user": "picker.hf", "since": "1h", "limit": 2})
        assert first.status_code == 200, first.text
        page = first.json()
        assert len(page["records"]) == 2 and page["next_offset"] == 2
        assert all(r["username"] == "picker.hf" for r in page["records"])
        times = [r["ts_ms"] for r in page["records"]]
        assert times == sorted(times, reverse=True)  # newest first
        second = admin.get("/_gateway/audit/records", params={"user": "picker.hf", "since": "1h", "limit": 2,
                                                              "offset": 2}).json()
        assert {r["decision_id"] for r in second["records"]}.isdisjoint({r["decision_id"] for r in page["records"]})
        picks = admin.get("/_gateway/audit/records", params={"user": "picker.hf", "module": "orders", "verb": "pick",
                                                             "warehouse": "HF", "since": "1h"}).json()["records"]
        assert mine in {r["decision_id"] for r in picks}
        assert all(r["verb"] == "pick" and r["warehouse"] == "HF" for r in picks)
    search = stack.audit_record(first.headers["X-Decision-Id"])  # reading the trail is itself audited
    assert (search["username"], search["module"], search["verb"], search["decision"]) == \
        ("admin1", "audit", "view", "allow")


def test_people_without_audit_permission_are_refused_and_recorded(stack: Stack) -> None:
    with stack.client("picker.hf") as picker:
        resp = picker.get("/_gateway/audit/records", params={"user": "supervisor"})
    body = assert_refused(resp, 403)
    record = stack.audit_record(body["decision_id"])
    assert record["module"] == "audit" and record["decision"] == "deny"


def test_malformed_filters_are_refused_with_a_bilingual_reason(stack: Stack) -> None:
    with stack.client("admin1") as admin:
        for params in ({"usr": "picker.hf"}, {"since": "yesterday"}, {"limit": "100000"}, {"decision": "maybe"},
                       {"since": "1h", "until": "2h"}):
            body = assert_refused(admin.get("/_gateway/audit/records", params=params), 400, "bad_audit_query")
            assert "审计查询参数" in body["reason_zh"]
        repeated = admin.get("/_gateway/audit/records?user=a&user=b")
        assert_refused(repeated, 400, "bad_audit_query")
        assert_refused(admin.get("/_gateway/audit/export", params={"format": "xlsx"}), 400, "bad_audit_query")


def test_exports_stream_csv_with_bom_and_jsonl_that_verifies(stack: Stack) -> None:
    _pick(stack)
    with stack.client("admin1") as admin:
        resp = admin.get("/_gateway/audit/export", params={"format": "csv", "user": "picker.hf", "since": "1h"})
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in resp.headers["Content-Disposition"]
        assert resp.content.startswith("\ufeff".encode("utf-8"))
        lines = resp.content.decode("utf-8-sig").splitlines()
        assert lines[-1].startswith("# chain head: {")
        rows = list(csv.DictReader(io.StringIO("\n".join(lines[:-1]))))
        assert rows and all(r["username"] == "picker.hf" for r in rows)
        mark = f"wmsgate:{resp.headers['X-Decision-Id']}"  # issue 17: every export names its exporter
        assert resp.headers["X-Export-Watermark"] == mark and all(r["wmsgate_watermark"] == mark for r in rows)
        jsonl = admin.get("/_gateway/audit/export", params={"format": "jsonl", "since": "1h"})
    assert jsonl.status_code == 200
    assert all(f'"wmsgate_watermark": "wmsgate:{jsonl.headers["X-Decision-Id"]}"' in line
               for line in jsonl.text.splitlines()[:-1])
    public_key = load_public_key(stack.stack.settings.state / "audit-signing-key.pub")
    count, problems = verify_jsonl(jsonl.text.splitlines(), public_key)
    assert count > 0 and problems == []
    record = stack.audit_record(jsonl.headers["X-Decision-Id"])
    assert (record["module"], record["verb"]) == ("audit", "export")
