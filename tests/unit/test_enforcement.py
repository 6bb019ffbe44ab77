"""Enforce or report mode: which changes between two starts are audited."""

from __future__ import annotations

from authorizer.enforce.enforcement import EnforcementModes, ModeChange, changes

KEYS = ["GET /a/", "GET /b/", "GET /c/"]


def test_report_mode_is_per_route_over_the_default() -> None:
    modes = EnforcementModes("enforce", {"GET /b/": "report"})
    assert modes.reports("GET /b/") and not modes.reports("GET /a/") and not modes.reports(None)
    assert EnforcementModes("report").reports(None)


def test_the_first_start_is_one_record_naming_the_routes_with_their_own_mode() -> None:
    modes = EnforcementModes("report", {"GET /b/": "enforce"})
    assert changes(None, modes.snapshot(KEYS), modes.overrides()) == [
        ModeChange("*", "none", "report", {"GET /b/": "enforce"})]


def test_switching_the_default_is_one_record_not_one_per_route() -> None:
    before = EnforcementModes("report", {"GET /b/": "enforce"})
    after = EnforcementModes("enforce", {"GET /b/": "enforce"})
    assert changes(before.snapshot(KEYS), after.snapshot(KEYS), after.overrides()) == [
        ModeChange("*", "report", "enforce")]


def test_a_route_switched_on_its_own_is_recorded_both_ways() -> None:
    enforced = EnforcementModes("enforce")
    one_reports = EnforcementModes("enforce", {"GET /c/": "report"})
    assert changes(enforced.snapshot(KEYS), one_reports.snapshot(KEYS), one_reports.overrides()) == [
        ModeChange("GET /c/", "enforce", "report")]
    assert changes(one_reports.snapshot(KEYS), enforced.snapshot(KEYS), enforced.overrides()) == [
        ModeChange("GET /c/", "report", "enforce")]


def test_nothing_changed_nothing_recorded() -> None:
    modes = EnforcementModes("enforce", {"GET /c/": "report"})
    assert changes(modes.snapshot(KEYS), modes.snapshot(KEYS), modes.overrides()) == []
