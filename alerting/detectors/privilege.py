"""Detector 2: a burst of privilege changes (roles, groups, attributes such as the data
scope) on one person, or made by one admin, within a short window.

Keycloak admin events give ids; the engine adds ``target_username`` and
``actor_username`` details when it can resolve them.
"""

from __future__ import annotations

import re

from alerting.detectors.base import Detection, WindowCounter
from alerting.events import ADMIN, SecurityEvent
from alerting.rules import PrivilegeBurstRule

#: Admin event resource types that change what people may do.
PRIVILEGE_RESOURCES = frozenset({"REALM_ROLE_MAPPING", "CLIENT_ROLE_MAPPING", "GROUP_MEMBERSHIP", "USER",
                                 "REALM_ROLE", "CLIENT_ROLE"})
_USER = re.compile(r"^users/([^/]+)(?:/(role-mappings|groups)(?:/.*)?)?$")
_GROUP = re.compile(r"^groups/([^/]+)/role-mappings(?:/.*)?$")
_ROLE = re.compile(r"^(?:roles|roles-by-id|clients/[^/]+/roles)/([^/]+)/composites(?:/.*)?$")


def privilege_target(event: SecurityEvent) -> str | None:
    """Whose privileges ``event`` changes: ``user:<id>``, ``group:<id>`` or ``role:<name or id>``;
    None when it changes none.

    Counted: a person's role mappings (realm or client), group membership and updates
    (attributes carry the data scope and grants; ``enabled``); a group's role mappings and a
    role's composites (each widens many people at once). Creating or deleting a user is
    provisioning, not a privilege change.
    """
    if event.kind != ADMIN or event.error or event.details.get("resource_type") not in PRIVILEGE_RESOURCES:
        return None
    path = str(event.details.get("resource_path", ""))
    if (match := _USER.match(path)) is not None:
        if match.group(2) is None and event.type != "UPDATE":
            return None
        return f"user:{match.group(1)}"
    if (match := _GROUP.match(path)) is not None:
        return f"group:{match.group(1)}"
    if (match := _ROLE.match(path)) is not None:
        return f"role:{match.group(1)}"
    return None


class PrivilegeBurstDetector:
    """Counts privilege changes per target person and per acting admin.

    When one event completes a burst on both (one admin changing one person), only the
    person's alert is reported; the admin's is reported when the changes span people.
    """

    name = "privilege_burst"

    def __init__(self, rule: PrivilegeBurstRule) -> None:
        self._rule = rule
        self._targets = WindowCounter(rule.window_seconds * 1000)
        self._actors = WindowCounter(rule.window_seconds * 1000)

    def observe(self, event: SecurityEvent) -> list[Detection]:
        """See :class:`alerting.detectors.base.Detector`."""
        target = privilege_target(event)
        if target is None or not self._rule.enabled:
            return []
        on_target = self._targets.add(target, event.time_ms, event.key)
        actor = event.user_id or event.client_id or "unknown"
        by_actor = self._actors.add(actor, event.time_ms, event.key)
        kind, target_id = target.split(":", 1)
        target_name = str(event.details.get("target_username") or target_id) if kind == "user" \
            else f"{kind} {target_id}"
        actor_name = str(event.details.get("actor_username") or actor)
        seconds = self._rule.window_seconds
        if len(on_target) >= self._rule.threshold:
            return [self._detection(f"target|{target_id}" if kind == "user" else f"target|{target}", target_name,
                                    on_target, event,
                                    f"{target_name} 的权限在 {seconds} 秒内被修改 {len(on_target)} 次",
                                    f"{len(on_target)} privilege changes on {target_name} within {seconds} s",
                                    {"target": target_name, "target_id": target_id, "target_kind": kind,
                                     "last_actor": actor_name})]
        if len(by_actor) >= self._rule.threshold and actor_name not in self._rule.trusted_actors:
            return [self._detection(f"actor|{actor}", actor_name, by_actor, event,
                                    f"管理员 {actor_name} 在 {seconds} 秒内修改了 {len(by_actor)} 次权限",
                                    f"admin {actor_name} made {len(by_actor)} privilege changes within {seconds} s",
                                    {"actor": actor_name, "actor_id": actor})]
        return []

    def _detection(self, key: str, subject: str, evidence: list[str], event: SecurityEvent, zh: str, en: str,
                   facts: dict[str, str]) -> Detection:
        return Detection(rule=self.name, severity=self._rule.severity, group_key=f"{self.name}|{key}",
                         subject=subject, title_zh=zh, title_en=en, evidence=tuple(evidence), at_ms=event.time_ms,
                         group_window_ms=self._rule.group_window_ms,
                         facts={**facts, "changes": len(evidence), "window_seconds": self._rule.window_seconds,
                                "last_change": f"{event.type} {event.details.get('resource_path', '')}"})
