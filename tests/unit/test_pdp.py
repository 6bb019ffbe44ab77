"""Parsing the PDP's answer: anything unexpected is a deny (fail closed)."""

from __future__ import annotations

from authorizer.authz.pdp import ApprovalRule, StepUp, parse_decision


def test_undefined_result_is_a_deny() -> None:
    d = parse_decision(None)
    assert not d.allow and d.status == 403 and d.reason.code == "pdp_undefined"


def test_malformed_result_is_a_deny() -> None:
    assert parse_decision({"allow": "yes"}).reason.code == "pdp_malformed"
    assert parse_decision([]).reason.code == "pdp_malformed"
    assert parse_decision({"allow": True, "obligations": []}).reason.code == "pdp_malformed"
    assert parse_decision({"allow": True, "obligations": {"row_filter": ["HF"]}}).reason.code == "pdp_malformed"


def test_unknown_obligation_is_a_deny_even_when_allowed() -> None:
    d = parse_decision({"allow": True, "obligations": {"watermark": {"text": "x"}, "mask": []}})
    assert not d.allow and d.reason.code == "unknown_obligation" and "watermark" in d.reason.en


def test_empty_unknown_obligations_are_ignored() -> None:
    assert parse_decision({"allow": True, "obligations": {"approval": None, "mask": []}}).allow


def test_allowed_decision_carries_obligations_and_revision() -> None:
    d = parse_decision({"allow": True, "status": 200, "policy_revision": "sha256:1",
                        "reasons": [{"code": "allowed", "zh-CN": "允许", "en": "allowed"}],
                        "obligations": {"row_filter": {"warehouse": ["HF"]}, "mask": ["amount"]}})
    assert d.allow and d.status == 200 and d.policy_revision == "sha256:1"
    assert d.obligations.row_filter == {"warehouse": ("HF",)} and d.obligations.mask == ("amount",)


def test_deny_status_is_limited_to_403_or_404() -> None:
    assert parse_decision({"allow": False, "status": 404}).status == 404
    assert parse_decision({"allow": False, "status": 200}).status == 403
    assert parse_decision({"allow": False, "status": 500}).status == 403


def test_step_up_challenge_is_parsed_and_needed_for_a_401() -> None:
    d = parse_decision({"allow": False, "status": 401,
                        "obligations": {"step_up": {"acr_values": "mfa", "max_age": 300}, "approval": None}})
    assert d.status == 401 and d.obligations.step_up == StepUp("mfa", 300)
    assert parse_decision({"allow": False, "status": 401}).status == 403


def test_malformed_step_up_or_approval_is_a_deny() -> None:
    bad_acr = parse_decision({"allow": False, "status": 401,
                              "obligations": {"step_up": {"acr_values": 'mfa" x="1', "max_age": 300}}})
    assert bad_acr.reason.code == "pdp_malformed"
    bad_approval = parse_decision({"allow": True, "obligations": {"approval": {"operation": "x", "approvals": 0,
                                                                              "expires_seconds": 10}}})
    assert not bad_approval.allow and bad_approval.reason.code == "pdp_malformed"


def test_approval_obligation_is_parsed() -> None:
    d = parse_decision({"allow": True, "obligations": {"approval": {"operation": "batch_change", "approvals": 1,
                                                                    "expires_seconds": 86400}}})
    assert d.allow and d.obligations.approval == ApprovalRule("batch_change", 1, 86400)
