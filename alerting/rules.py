"""Detector rules and thresholds, read from a YAML file (``config/alert-rules.yaml``).

Every rule has a default, so a file may name only what it changes; unknown rule or
setting names are refused, so a typo cannot silently leave a default in place.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from authorizer.config import ConfigError, read_yaml_mapping

SEVERITIES = ("critical", "high", "medium", "low")


class RulesError(ValueError):
    """The rules file is malformed or names an unknown rule or setting."""


@dataclass(frozen=True)
class Rule:
    """Settings every rule has.

    Attributes:
        enabled: False turns the detector off.
        severity: ``critical``, ``high``, ``medium`` or ``low``.
        group_window_minutes: a repeat of the same alert within this many minutes of its
            last sighting is counted on the open alert instead of being sent again.
    """

    enabled: bool = True
    severity: str = "high"
    group_window_minutes: int = 30

    @property
    def group_window_ms(self) -> int:
        """The grouping window in milliseconds."""
        return self.group_window_minutes * 60_000


@dataclass(frozen=True)
class MultiDeviceRule(Rule):
    """Detector 1. ``min_devices`` distinct devices with live sessions; a login is live for
    ``session_ttl_minutes`` unless its logout is seen. ``demand_step_up``: while the alert is
    not resolved, the person's next high-risk request or approval through the gateway needs a
    new MFA login made at or after the alert opened, whatever their token shows."""

    min_devices: int = 2
    session_ttl_minutes: int = 30
    group_window_minutes: int = 60
    demand_step_up: bool = True


@dataclass(frozen=True)
class ImpossibleTravelRule(Rule):
    """Detector 7. One account logs in at two sites (``sites``: ``"NAME=CIDR"`` strings, a site
    being a warehouse's or office's network) less than ``min_travel_minutes`` apart: nobody
    travels between warehouses that fast. ``demand_step_up`` as for :class:`MultiDeviceRule`."""

    sites: tuple[str, ...] = ()
    min_travel_minutes: int = 60
    group_window_minutes: int = 60
    demand_step_up: bool = True


@dataclass(frozen=True)
class PrivilegeBurstRule(Rule):
    """Detector 2. ``threshold`` privilege changes on one person or by one admin within ``window_seconds``.

    ``trusted_actors``: accounts (usernames) whose changes count on the people changed but
    not as a burst of their own: the gateway's service account, whose every change is
    decided by the policy, held for four-eyes approval when it widens access, and audited
    with the admin who asked (one offboarding is several Keycloak changes).
    """

    threshold: int = 5
    window_seconds: int = 60
    trusted_actors: tuple[str, ...] = ("service-account-wms-access-admin",)


@dataclass(frozen=True)
class HighRiskRule(Rule):
    """Detector 3. Every high-risk request the gateway saw (not its step-up challenges)."""

    group_window_minutes: int = 10


@dataclass(frozen=True)
class FailedLoginRule(Rule):
    """Detector 4. ``per_account`` / ``per_ip`` failed logins within ``window_seconds``."""

    severity: str = "medium"
    per_account: int = 3
    per_ip: int = 10
    window_seconds: int = 300


@dataclass(frozen=True)
class BlockedAccountRule(Rule):
    """Detector 5. Keycloak login errors and gateway refusal codes that mean the account is shut."""

    keycloak_errors: tuple[str, ...] = ("user_disabled", "user_temporarily_disabled")
    gateway_reason_codes: tuple[str, ...] = ("token_revoked", "tokens_revoked_before", "grant_outside_window")


@dataclass(frozen=True)
class WindowCountRule(Rule):
    """Detector 6 (audit trail patterns): ``threshold`` matching records within ``window_seconds``."""

    threshold: int = 4
    window_seconds: int = 600
    group_window_minutes: int = 60


@dataclass(frozen=True)
class Rules:
    """All detector rules (attribute names are the rule names of the YAML file)."""

    multi_device_login: MultiDeviceRule = field(default_factory=MultiDeviceRule)
    impossible_travel: ImpossibleTravelRule = field(default_factory=ImpossibleTravelRule)
    privilege_burst: PrivilegeBurstRule = field(default_factory=PrivilegeBurstRule)
    high_risk_operation: HighRiskRule = field(default_factory=HighRiskRule)
    failed_login_burst: FailedLoginRule = field(default_factory=FailedLoginRule)
    blocked_account_login: BlockedAccountRule = field(default_factory=BlockedAccountRule)
    order_status_churn: WindowCountRule = field(default_factory=lambda: WindowCountRule(severity="medium"))
    bulk_inventory_deletes: WindowCountRule = field(default_factory=lambda: WindowCountRule(threshold=5))
    field_reveals: WindowCountRule = field(default_factory=lambda: WindowCountRule(
        severity="medium", threshold=5, window_seconds=3600, group_window_minutes=60))

    def step_up_rules(self) -> frozenset[str]:
        """The rules whose unresolved alerts demand a step-up of the person they name."""
        return frozenset(name for name in self.__dataclass_fields__
                         if getattr(getattr(self, name), "demand_step_up", False) and getattr(self, name).enabled)

    def longest_window_ms(self) -> int:
        """The longest time any detector looks back (what a restart must replay), ms."""
        seconds = [self.multi_device_login.session_ttl_minutes * 60, self.privilege_burst.window_seconds,
                   self.impossible_travel.min_travel_minutes * 60,
                   self.failed_login_burst.window_seconds, self.order_status_churn.window_seconds,
                   self.bulk_inventory_deletes.window_seconds, self.field_reveals.window_seconds]
        return max(seconds) * 1000


def _apply(default: Rule, name: str, values: Any) -> Rule:
    if not isinstance(values, dict):
        raise RulesError(f"rule '{name}' must be a mapping")
    known = {f.name: f for f in fields(default)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise RulesError(f"rule '{name}': unknown setting '{key}' (known: {', '.join(sorted(known))})")
        current = getattr(default, key)
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise RulesError(f"rule '{name}': '{key}' must be true or false")
        elif isinstance(current, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RulesError(f"rule '{name}': '{key}' must be a positive integer")
        elif isinstance(current, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RulesError(f"rule '{name}': '{key}' must be a list of strings")
            value = tuple(value)
        elif key == "severity" and value not in SEVERITIES:
            raise RulesError(f"rule '{name}': severity must be one of {', '.join(SEVERITIES)}")
        changes[key] = value
    return replace(default, **changes)


def load_rules(path: Path | None) -> Rules:
    """Read a rules file; None or a missing section keeps the defaults.

    Raises:
        RulesError: unreadable YAML, an unknown rule or setting, or a value of the wrong type.
    """
    rules = Rules()
    if path is None:
        return rules
    try:
        data = read_yaml_mapping(path, "alert rules")
    except ConfigError as exc:
        raise RulesError(str(exc)) from exc
    known = {f.name for f in fields(rules)}
    changes: dict[str, Rule] = {}
    for name, values in data.items():
        if name not in known:
            raise RulesError(f"unknown alert rule '{name}' (known: {', '.join(sorted(known))})")
        changes[name] = _apply(getattr(rules, name), name, values)
    loaded = replace(rules, **changes)
    for site in loaded.impossible_travel.sites:
        if site_network(site) is None:
            raise RulesError(f"rule 'impossible_travel': site {site!r} must be NAME=CIDR (HF=10.1.0.0/16)")
    return loaded


def site_network(site: str) -> tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """``"HF=10.1.0.0/16"`` as ``("HF", network)``; None when it is not that shape."""
    name, _, cidr = site.partition("=")
    try:
        return (name.strip(), ipaddress.ip_network(cidr.strip(), strict=False)) if name.strip() else None
    except ValueError:
        return None
