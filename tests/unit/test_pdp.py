"""Parsing the PDP's answer: anything unexpected is a deny (fail closed)."""

from __future__ import annotations

from authorizer.pdp import parse_decision


def test_undefined_result_is_a_deny() -> None:
    d = parse_decision(None)
    assert not d.allow and d.status == 403 and d.reason.code == "pdp_undefined"


def test_malformed_result_is_a_deny() -> None:
    assert parse_decision({"allow": "yes"}).reason.code == "pdp_malformed"
    assert parse_decision([]).reason.code == "pdp_malformed"
    assert parse_decision({"allow": True, "obligations": []}).reason.code == "pdp_malformed"
    assert parse_decision({"allow": True, "obligations": {"row_filter": ["HF"]}}).reason.code == "pdp_malformed"


def test_unknown_obligation_is_a_deny_even_when_allowed() -> None:
    d = parse_decision({"allow": True, "obligations": {"step_up": {"acr": "2"}, "mask": []}})
    assert not d.allow and d.reason.code == "unknown_obligation" and "step_up" in d.reason.en


def test_empty_unknown_obligations_are_ignored() -> None:
    assert parse_decision({"allow": True, "obligations": {"approval": None, "mask": []}}).allow


def test_allowed_decision_carries_obligations_and_revision() -> None:
    d = parse_decision({"allow": True, "status": 200, "policy_revision": "sha256:1",
                        "reasons": [{"code": "allowed", "zh-CN": "允許", "en": "allowed"}],
                        "obligations": {"row_filter": {"warehouse": ["HF"]}, "mask": ["amount"]}})
    assert d.allow and d.status == 200 and d.policy_revision == "sha256:1"
    assert d.obligations.row_filter == {"warehouse": ("HF",)} and d.obligations.mask == ("amount",)


def test_deny_status_is_limited_to_403_or_404() -> None:
    assert parse_decision({"allow": False, "status": 404}).status == 404
    assert parse_decision({"allow": False, "status": 200}).status == 403
    assert parse_decision({"allow": False, "status": 500}).status == 403
