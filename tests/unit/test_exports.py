"""Export control at the PEP: row limits, reasons, unmasked personal data and the watermark
(the real proxy's exports are in tests/integration/test_exports.py)."""

from __future__ import annotations

import csv
import io

import pytest

from authorizer.authz.pdp import ApprovalRule, ExportControl, parse_decision
from authorizer.enforce.exports import (
    WATERMARK_COLUMN,
    ExportContext,
    ExportHeld,
    ExportRefused,
    control_csv,
    find_watermarks,
    parse_reason,
)

DECISION = "0123456789abcdef0123456789abcdef"
CSV = "channel,warehouse,revenue\r\namazon,HF,10.5\r\ntaobao,SH,\"1,200\"\r\n"


def test_every_row_is_watermarked_and_the_file_names_its_export() -> None:
    text, facts = control_csv(CSV, ExportControl(10, 100), ExportContext(DECISION, None))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["channel", "warehouse", "revenue", WATERMARK_COLUMN]
    assert rows[2] == ["taobao", "SH", "1,200", f"wmsgate:{DECISION}"]
    assert facts == {"export": {"rows": 2, "reason": None, "unmasked_pii": [], "watermark": f"wmsgate:{DECISION}"}}
    leaked = "\n".join(text.splitlines()[2:])  # a few rows cut out of the file still name the export
    assert find_watermarks(leaked) == [DECISION]
    assert find_watermarks("no mark here, wmsgate:xyz") == []


def test_too_many_rows_are_refused_and_more_than_a_few_need_a_reason() -> None:
    with pytest.raises(ExportRefused) as refused:
        control_csv(CSV, ExportControl(0, 1), ExportContext(DECISION, "月度对账"))
    assert refused.value.key == "export_too_large" and refused.value.params == {"rows": 2, "limit": 1}
    with pytest.raises(ExportRefused) as refused:
        control_csv(CSV, ExportControl(1, 100), ExportContext(DECISION, None))
    assert refused.value.key == "export_reason_required" and "more than 1 rows" in refused.value.params["why_en"]
    _, facts = control_csv(CSV, ExportControl(1, 100), ExportContext(DECISION, "月度对账"))
    assert facts["export"]["reason"] == "月度对账"


def test_above_the_approval_threshold_an_export_is_held_unless_approved() -> None:
    rule = ApprovalRule("large_export", 1, 86400)
    control = ExportControl(0, 100, (), 1, rule)
    with pytest.raises(ExportRefused) as refused:  # the reason comes first: approvers read it
        control_csv(CSV, control, ExportContext(DECISION, None))
    assert refused.value.key == "export_reason_required"
    with pytest.raises(ExportHeld) as held:
        control_csv(CSV, control, ExportContext(DECISION, "月度对账"))
    assert (held.value.rows, held.value.rule) == (2, rule)
    _, facts = control_csv(CSV, control, ExportContext(DECISION, "月度对账", "a" * 32))  # the approved download
    assert facts["export"]["rows"] == 2 and facts["export"]["approval_id"] == "a" * 32
    with pytest.raises(ExportRefused) as refused:  # never more rows than the approvers saw
        control_csv(CSV, control, ExportContext(DECISION, "月度对账", "a" * 32, 1))
    assert refused.value.key == "export_approval_unusable" and "approved for 1 rows" in refused.value.params["why_en"]
    with pytest.raises(ExportRefused) as refused:  # still never above the hard limit
        control_csv(CSV, ExportControl(0, 1, (), 0, rule), ExportContext(DECISION, "r", "a" * 32))
    assert refused.value.key == "export_too_large"
    with pytest.raises(ExportRefused) as refused:  # a policy without an approval rule: refused, not handed out
        control_csv(CSV, ExportControl(0, 100, (), 1, None), ExportContext(DECISION, "月度对账"))
    assert refused.value.params == {"rows": 2, "limit": 1}


def test_unmasked_personal_data_needs_a_reason_only_when_the_file_carries_it() -> None:
    control = ExportControl(100, 1000, ("amount", "customer_phone"))
    _, facts = control_csv(CSV, control, ExportContext(DECISION, None))  # no such column: no reason needed
    assert facts["export"]["unmasked_pii"] == []
    with_phone = "channel,手机\r\namazon,13800001234\r\n"
    with pytest.raises(ExportRefused) as refused:
        control_csv(with_phone, control, ExportContext(DECISION, None), {"手机": "customer_phone"})
    assert "customer_phone" in refused.value.params["why_en"] and "个人信息" in refused.value.params["why_zh"]


def test_the_reason_header_is_utf8_percent_encoded_and_bounded() -> None:
    assert parse_reason("%E6%9C%88%E5%BA%A6%E5%AF%B9%E8%B4%A6") == "月度对账"
    assert parse_reason("  ") is None and parse_reason(None) is None
    with pytest.raises(ValueError):
        parse_reason("x" * 501)
    with pytest.raises(UnicodeDecodeError):
        parse_reason("%FF")


def test_the_export_obligation_is_parsed_and_a_malformed_one_denies() -> None:
    doc = {"allow": True, "obligations": {"export": {"reason_over_rows": 20, "refuse_over_rows": 10000,
                                                     "unmasked_pii": ["b", "a"]}}}
    assert parse_decision(doc).obligations.export == ExportControl(20, 10000, ("a", "b"))
    doc["obligations"]["export"].update(approve_over_rows=40, approval={"operation": "large_export", "approvals": 1,
                                                                        "expires_seconds": 86400})
    assert parse_decision(doc).obligations.export == ExportControl(20, 10000, ("a", "b"), 40,
                                                                   ApprovalRule("large_export", 1, 86400))
    doc["obligations"]["export"]["approve_over_rows"] = None  # an approval without its threshold: fail closed
    assert parse_decision(doc).reason.code == "pdp_malformed"
    bad = {"allow": True, "obligations": {"export": {"reason_over_rows": "20", "refuse_over_rows": 1,
                                                     "unmasked_pii": []}}}
    decision = parse_decision(bad)
    assert not decision.allow and decision.reason.code == "pdp_malformed"  # the catalog code of obligations_malformed
