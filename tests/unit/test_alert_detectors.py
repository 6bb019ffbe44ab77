"""The detectors on hand-made events (the real Keycloak and gateway feed them in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.detectors import build_detectors
from alerting.detectors.audit_patterns import (
    BulkInventoryDeleteDetector,
    FieldRevealDetector,
    OrderStatusChurnDetector,
)
from alerting.detectors.base import WindowCounter
from alerting.detectors.high_risk import HighRiskDetector
from alerting.detectors.logins import BlockedAccountDetector, FailedLoginDetector
from alerting.detectors.privilege import PrivilegeBurstDetector, privilege_target
from alerting.detectors.sessions import MultiDeviceDetector
from alerting.detectors.travel import ImpossibleTravelDetector
from alerting.events import SecurityEvent
from alerting.rules import ImpossibleTravelRule, Rules, RulesError, load_rules

T0 = 1_764_400_000_000
RULES = Rules()


def login(n: int, ip: str, ua: str, at: int = T0, user: str = "u1", session: str | None = None) -> SecurityEvent:
    return SecurityEvent("user", f"e{n}", at, "LOGIN", user_id=user, username="picker.hf", ip=ip, user_agent=ua,
                         session_id=session or f"s{n}", details={"username": "picker.hf"})


def admin(n: int, path: str, kind: str = "REALM_ROLE_MAPPING", op: str = "CREATE", actor: str = "a1",
          at: int = T0) -> SecurityEvent:
    return SecurityEvent("admin", f"a{n}", at, op, user_id=actor,
                         details={"resource_type": kind, "resource_path": path})


def decision(n: int, at: int = T0, **details: object) -> SecurityEvent:
    base = {"module": "orders", "verb": "delete", "resource_id": "SO-1", "reason_code": "allowed", "http_status": 200,
            "upstream_status": None, "detail": {}}
    base.update(details)
    return SecurityEvent("decision", f"d{n}", at, str(base.pop("decision", "allow")), user_id="u9",
                         username="supervisor", details=base)


def test_two_devices_make_one_alert_and_the_same_pair_again_groups_with_it() -> None:
    d = MultiDeviceDetector(RULES.multi_device_login)
    assert d.observe(login(1, "127.0.0.2", "A")) == []
    [first] = d.observe(login(2, "127.0.0.3", "B", T0 + 1000))
    assert first.subject == "picker.hf" and first.evidence == ("user:e1", "user:e2")
    assert {x["ip"] for x in first.facts["devices"]} == {"127.0.0.2", "127.0.0.3"}
    [again] = d.observe(login(3, "127.0.0.2", "A", T0 + 2000))
    assert again.group_key == first.group_key  # same devices: counted on the open alert
    [third] = d.observe(login(4, "10.0.0.9", "C", T0 + 3000))
    assert third.group_key != first.group_key  # a new device is news


def test_sso_reentries_of_a_live_session_are_not_new_sessions_keycloak_24498() -> None:
    d = MultiDeviceDetector(RULES.multi_device_login)
    assert d.observe(login(1, "127.0.0.2", "A", session="sso-1")) == []
    for n in range(2, 30):  # page reloads, check-sso, other clients: LOGIN on the same live session
        assert d.observe(login(n, "127.0.0.2", "A", T0 + n * 1000, session="sso-1")) == []
    [alert] = d.observe(login(41, "127.0.0.3", "B", T0 + 41_000, session="sso-2"))  # a second session is news
    assert alert.evidence == ("user:e1", "user:e41")
    d2 = MultiDeviceDetector(RULES.multi_device_login)
    assert d2.observe(login(1, "127.0.0.2", "A", session="sso-1")) == []
    [stolen] = d2.observe(login(2, "10.9.9.9", "Z", T0 + 1000, session="sso-1"))  # the same SSO session elsewhere
    assert {x["ip"] for x in stolen.facts["devices"]} == {"127.0.0.2", "10.9.9.9"}
    ttl = RULES.multi_device_login.session_ttl_minutes * 60_000
    later = T0 + 41_000 + ttl + 1  # after both timed out, the same id is a new session again
    assert d.observe(login(50, "127.0.0.2", "A", later, session="sso-1")) == []


def test_same_device_twice_is_not_multi_device_and_logout_or_expiry_ends_a_session() -> None:
    d = MultiDeviceDetector(RULES.multi_device_login)
    assert d.observe(login(1, "127.0.0.2", "A")) == []
    assert d.observe(login(2, "127.0.0.2", "A", T0 + 10)) == []
    d.observe(SecurityEvent("user", "lo", T0 + 20, "LOGOUT", user_id="u1", session_id="s1"))
    d.observe(SecurityEvent("user", "lo2", T0 + 21, "LOGOUT", user_id="u1", session_id="s2"))
    assert d.observe(login(3, "127.0.0.3", "B", T0 + 30)) == []
    ttl = RULES.multi_device_login.session_ttl_minutes * 60_000
    assert d.observe(login(4, "127.0.0.4", "C", T0 + 31 + ttl)) == []  # the earlier session timed out


def test_an_admin_logout_of_the_person_ends_every_session() -> None:
    d = MultiDeviceDetector(RULES.multi_device_login)
    d.observe(login(1, "127.0.0.2", "A"))
    d.observe(admin(1, "users/u1/logout", kind="USER", op="ACTION", at=T0 + 5))
    assert d.observe(login(2, "127.0.0.3", "B", T0 + 10)) == []


def test_privilege_burst_on_one_person_reports_the_person_once_the_threshold_is_reached() -> None:
    d = PrivilegeBurstDetector(RULES.privilege_burst)
    found = [d.observe(admin(i, "users/t1/role-mappings/realm", op="CREATE" if i % 2 else "DELETE", at=T0 + i * 1000))
             for i in range(6)]
    assert [len(f) for f in found] == [0, 0, 0, 0, 1, 1]
    assert found[4][0].group_key == "privilege_burst|target|t1" and found[4][0].facts["changes"] == 5


def test_privilege_changes_spread_out_in_time_or_over_people_by_one_admin() -> None:
    slow = PrivilegeBurstDetector(RULES.privilege_burst)
    assert not any(slow.observe(admin(i, "users/t1/groups/g", kind="GROUP_MEMBERSHIP", at=T0 + i * 20_000))
                   for i in range(6))
    spread = PrivilegeBurstDetector(RULES.privilege_burst)
    found = [spread.observe(admin(i, f"users/t{i}", kind="USER", op="UPDATE", at=T0 + i)) for i in range(5)]
    assert found[-1][0].group_key == "privilege_burst|actor|a1"
    gateway = PrivilegeBurstDetector(RULES.privilege_burst)  # the gateway's own account: audited elsewhere
    events = [admin(i, f"users/t{i}", kind="USER", op="UPDATE", actor="svc", at=T0 + i) for i in range(6)]
    assert not any(gateway.observe(SecurityEvent(e.kind, e.event_id, e.time_ms, e.type, user_id=e.user_id,
                                                 details={**e.details,
                                                          "actor_username": "service-account-wms-access-admin"}))
                   for e in events)


def test_what_counts_as_a_privilege_change() -> None:
    assert privilege_target(admin(1, "users/x/role-mappings/clients/c")) == "user:x"
    assert privilege_target(admin(1, "users/x", kind="USER", op="UPDATE")) == "user:x"
    assert privilege_target(admin(1, "groups/g1/role-mappings/realm")) == "group:g1"
    assert privilege_target(admin(1, "roles/picker/composites", kind="REALM_ROLE", op="CREATE")) == "role:picker"
    assert privilege_target(admin(1, "users/x", kind="USER", op="CREATE")) is None
    assert privilege_target(admin(1, "clients/c", kind="CLIENT", op="UPDATE")) is None


def test_high_risk_operations_by_phase_and_step_up_challenges_are_not_alerts() -> None:
    d = HighRiskDetector(RULES.high_risk_operation)
    [held] = d.observe(decision(1, reason_code="approval_required", http_status=202,
                                detail={"high_risk": "order_delete"}))
    assert held.facts["phase"] == "held" and held.subject == "supervisor" and "SO-1" in held.title_en
    assert d.observe(decision(2, decision="deny", reason_code="step_up_required", http_status=401,
                              detail={"high_risk": "order_delete"})) == []
    [refused] = d.observe(decision(3, decision="deny", reason_code="missing_permission", http_status=403,
                                   detail={"high_risk": "order_delete"}))
    assert refused.facts["phase"] == "refused"
    [done] = d.observe(decision(4, reason_code="approved_request_executed", upstream_status=200,
                                detail={"operation": "order_delete"}))
    assert done.facts["phase"] == "executed"
    assert d.observe(decision(5, verb="view", detail={})) == []
    # a failure the WMS reported (in a 200 body, recorded as upstream_status 400) is not "executed"
    [failed] = d.observe(decision(6, upstream_status=400, detail={"high_risk": "inventory_adjust"}))
    assert failed.facts["phase"] == "failed" and "reported a failure" in failed.title_en


def test_failed_logins_per_account_and_per_address() -> None:
    d = FailedLoginDetector(RULES.failed_login_burst)

    def fail(n: int, user: str, ip: str) -> list:
        return d.observe(SecurityEvent("user", f"f{n}", T0 + n, "LOGIN_ERROR", username=user, ip=ip,
                                       error="invalid_user_credentials"))
    assert fail(1, "a", "10.0.0.1") == [] and fail(2, "a", "10.0.0.2") == []
    [account] = fail(3, "a", "10.0.0.3")
    assert account.group_key == "failed_login_burst|account|a" and account.facts["failures"] == 3
    found = [fail(10 + i, f"user{i}", "10.9.9.9") for i in range(10)]
    assert found[-1][0].group_key == "failed_login_burst|ip|10.9.9.9"


def test_blocked_accounts_from_keycloak_and_from_the_gateway() -> None:
    d = BlockedAccountDetector(RULES.blocked_account_login)
    [kc] = d.observe(SecurityEvent("user", "x", T0, "LOGIN_ERROR", username="gone", error="user_disabled"))
    assert kc.subject == "gone" and kc.title_en.startswith("disabled, offboarded or expired account gone")
    [locked] = d.observe(SecurityEvent("user", "y", T0, "LOGIN_ERROR", username="bob",
                                       error="user_temporarily_disabled"))
    assert "locked-out account bob" in locked.title_en and "临时锁定" in locked.title_zh
    [gw] = d.observe(decision(1, decision="deny", reason_code="token_revoked", http_status=401))
    assert gw.subject == "supervisor" and "revoked token" in gw.title_en
    [expired] = d.observe(decision(2, decision="deny", reason_code="grant_outside_window", http_status=403))
    assert "temporary grant after it ended" in expired.title_en and "授权到期" in expired.title_zh
    assert d.observe(SecurityEvent("user", "z", T0, "LOGIN_ERROR", username="a",
                                   error="invalid_user_credentials")) == []


def test_order_churn_and_bulk_inventory_deletes_count_only_what_reached_the_wms() -> None:
    churn = OrderStatusChurnDetector(RULES.order_status_churn)
    found = [churn.observe(decision(i, verb="update", upstream_status=200, at=T0 + i)) for i in range(4)]
    assert [len(f) for f in found] == [0, 0, 0, 1]
    assert churn.observe(decision(9, verb="update", upstream_status=409)) == []
    [batch] = churn.observe(decision(10, verb="update", upstream_status=200, resource_id="SO-1,SO-2", at=T0 + 10))
    assert batch.subject == "SO-1"  # a batch status change counts for each of its orders
    deletes = BulkInventoryDeleteDetector(RULES.bulk_inventory_deletes)
    found = [deletes.observe(decision(i, module="inventory", verb="delete", resource_id=f"I{i}", warehouse="HF",
                                      upstream_status=204, at=T0 + i)) for i in range(5)]
    assert found[-1][0].subject == "warehouse HF" and found[-1][0].facts["deletes"] == 5


def test_many_reveals_by_one_person_within_an_hour_alert_and_refused_ones_do_not_count() -> None:
    reveals = FieldRevealDetector(RULES.field_reveals)
    reveal = {"reveal": {"field": "customer_phone", "reason": "客户投诉"}}
    assert reveals.observe(decision(0, decision="deny", verb="reveal", reason_code="missing_permission")) == []
    assert reveals.observe(decision(1, verb="view")) == []
    found = [reveals.observe(decision(i, verb="reveal", resource_id=f"SO-{i}", detail=reveal, at=T0 + i * 60_000))
             for i in range(5)]
    assert [len(f) for f in found] == [0, 0, 0, 0, 1]
    [alert] = found[-1]
    assert alert.subject == "supervisor" and alert.facts["reveals"] == 5 and alert.facts["last_record"] == "SO-4"
    assert alert.facts["last_field"] == "customer_phone" and "临时查看" in alert.title_zh
    later = FieldRevealDetector(RULES.field_reveals)  # spread over more than an hour: no alert
    assert not any(later.observe(decision(i, verb="reveal", at=T0 + i * 16 * 60_000)) for i in range(5))


def test_logins_at_two_sites_sooner_than_anyone_travels_alert() -> None:
    rule = ImpossibleTravelRule(sites=("HF=10.1.0.0/16", "SH=10.2.0.0/16"), min_travel_minutes=60)
    travel = ImpossibleTravelDetector(rule)
    assert travel.observe(login(1, "10.1.3.4", "pda", at=T0)) == []
    assert travel.observe(login(2, "10.1.9.9", "desk", at=T0 + 60_000)) == []  # the same site
    assert travel.observe(login(3, "192.0.2.7", "vpn", at=T0 + 90_000)) == []  # no site: not judged
    [alert] = travel.observe(login(4, "10.2.0.5", "pda", at=T0 + 10 * 60_000))
    assert alert.rule == "impossible_travel" and alert.facts["from_site"] == "HF" and alert.facts["to_site"] == "SH"
    assert alert.facts["user_id"] == "u1" and alert.facts["minutes_apart"] == 9.0 and "不可能" in alert.title_zh
    assert travel.observe(login(5, "10.1.0.1", "pda", at=T0 + 80 * 60_000)) == []  # 70 min later: possible
    assert ImpossibleTravelDetector(ImpossibleTravelRule()).observe(login(6, "10.2.0.5", "pda")) == []


def test_a_site_that_is_not_name_and_cidr_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("impossible_travel:\n  sites: ['HF 10.1.0.0/16']\n", encoding="utf-8")
    with pytest.raises(RulesError, match="NAME=CIDR"):
        load_rules(bad)


def test_window_counter_handles_late_events_and_forgets_idle_keys() -> None:
    c = WindowCounter(1000)
    c.add("k", 5000, "b")
    assert c.add("k", 4500, "a") == ["a"]  # a late event: the window ends at its own time
    assert c.add("k", 5400, "c") == ["a", "b", "c"]
    c.forget_idle(10_000)
    assert c.add("k", 10_000, "d") == ["d"]


def test_every_rule_has_a_detector_and_the_shipped_rules_file_is_valid() -> None:
    rules = load_rules(Path(__file__).resolve().parents[2] / "config" / "alert-rules.yaml")
    assert rules.privilege_burst.threshold == 5 and rules.failed_login_burst.per_account == 3
    assert {d.name for d in build_detectors(rules)} == set(Rules.__dataclass_fields__)


@pytest.mark.parametrize("text, message", [
    ("privilege_burts: {threshold: 3}", "unknown alert rule"),
    ("privilege_burst: {treshold: 3}", "unknown setting"),
    ("privilege_burst: {threshold: 0}", "positive integer"),
    ("privilege_burst: {severity: loud}", "severity"),
    ("blocked_account_login: {keycloak_errors: user_disabled}", "list of strings"),
])
def test_a_mistyped_rules_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError, match=message):
        load_rules(path)


def test_a_login_read_back_without_user_agent_is_the_same_device_as_its_pushed_twin() -> None:
    from alerting.detectors.sessions import distinct_devices
    assert distinct_devices(["127.0.0.2|UA", "127.0.0.2"]) == {"127.0.0.2"}
    assert distinct_devices(["127.0.0.2|UA", "127.0.0.2|UB"]) == {"127.0.0.2|UA", "127.0.0.2|UB"}
    assert len(distinct_devices(["127.0.0.2", "127.0.0.3|UA"])) == 2


def test_failed_logins_under_other_spellings_of_one_account_count_together() -> None:
    d = FailedLoginDetector(RULES.failed_login_burst)
    names = ["Admin1", "ADMIN1", "admin1@example.test"]
    found = [d.observe(SecurityEvent("user", f"f{n}", T0 + n, "LOGIN_ERROR", user_id="kc-id-1", username=name,
                                     ip=f"10.0.0.{n}", error="invalid_user_credentials"))
             for n, name in enumerate(names)]
    assert found[-1] and found[-1][0].group_key == "failed_login_burst|account|kc-id-1"
    unknown = [d.observe(SecurityEvent("user", f"u{n}", T0 + n, "LOGIN_ERROR", username=name, ip=f"10.1.0.{n}",
                                       error="user_not_found")) for n, name in enumerate(["Ghost", "ghost", "GHOST"])]
    assert unknown[-1] and unknown[-1][0].group_key == "failed_login_burst|account|ghost"
