"""Separation of duties (SoD): role sets one person may not hold together (toxic
combinations). The sets are policy data (``data.wms.sod.conflicts``, evaluated by the
Rego rule ``wms.authz.role_conflicts``); :class:`~authorizer.iam.access.AccessService`
asks before it gives anyone a role or a temporary grant, through a :data:`ConflictSource`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RoleConflict:
    """One toxic combination a person would hold.

    Attributes:
        roles: the conflicting roles, sorted.
        zh, en: why they may not be held together.
    """

    roles: tuple[str, ...]
    zh: str
    en: str


class ConflictsUnavailable(Exception):
    """The policy could not be asked (the change is refused: fail closed)."""


#: Given the roles a person would hold (sorted), the conflicts among them; raises
#: :class:`ConflictsUnavailable` when the policy cannot answer.
ConflictSource = Callable[[list[str]], Awaitable[list[RoleConflict]]]


def parse_conflicts(result: Any) -> list[RoleConflict]:
    """The conflicts in OPA's answer for ``wms/authz/role_conflicts`` (a set: a JSON list of
    ``{"roles": [...], "zh-CN": ..., "en": ...}``; empty when there are none).

    Raises:
        ConflictsUnavailable: the answer is not that shape, or undefined (None: a bundle
            without the rule; a broken or missing policy blocks changes).
    """
    if result is None:
        raise ConflictsUnavailable("the policy has no role_conflicts rule")
    if not isinstance(result, list):
        raise ConflictsUnavailable(f"role_conflicts is not a list: {type(result).__name__}")
    found = []
    for item in result:
        roles = item.get("roles") if isinstance(item, dict) else None
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles) \
                or not isinstance(item.get("zh-CN"), str) or not isinstance(item.get("en"), str):
            raise ConflictsUnavailable(f"malformed role conflict: {item!r}")
        found.append(RoleConflict(tuple(sorted(roles)), item["zh-CN"], item["en"]))
    return sorted(found, key=lambda c: c.roles)
