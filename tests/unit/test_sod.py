"""Separation of duties: OPA's answer parsed strictly, and the access service refusing a toxic
combination (409) or refusing everything when the policy cannot be asked (fail closed). The
real rules run in OPA in tests/integration/test_separation_of_duties.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from authorizer.iam.access import AccessError, AccessService
from authorizer.iam.sod import ConflictsUnavailable, RoleConflict, parse_conflicts


def test_the_policy_answer_is_parsed_strictly() -> None:
    answer = [{"roles": ["warehouse_keeper", "finance"], "zh-CN": "管物与管账须分离", "en": "keep apart"}]
    assert parse_conflicts(answer) == [RoleConflict(("finance", "warehouse_keeper"), "管物与管账须分离", "keep apart")]
    assert parse_conflicts([]) == []
    for broken in (None, {"roles": []}, [{"roles": "a"}], [{"roles": ["a"], "en": "x"}]):
        with pytest.raises(ConflictsUnavailable):
            parse_conflicts(broken)


def _service(answer: Any) -> AccessService:
    async def conflicts(roles: list[str]) -> list[RoleConflict]:
        if isinstance(answer, Exception):
            raise answer
        return parse_conflicts(answer) if set(roles) >= {"finance", "warehouse_keeper"} else []

    return AccessService(None, None, None, conflicts=conflicts)  # type: ignore[arg-type]


def test_a_toxic_combination_is_a_409_and_an_unanswering_policy_refuses_the_change() -> None:
    toxic = _service([{"roles": ["finance", "warehouse_keeper"], "zh-CN": "账实分离", "en": "keep apart"}])
    asyncio.run(toxic.check_separation("keeper.sh", ["picker"]))  # no conflict: nothing raised
    with pytest.raises(AccessError) as refused:
        asyncio.run(toxic.check_separation("keeper.sh", ["warehouse_keeper", "finance"]))
    assert (refused.value.status, refused.value.key) == (409, "role_conflict")
    assert "finance + warehouse_keeper" in refused.value.en and "账实分离" in refused.value.zh
    down = _service(ConflictsUnavailable("OPA down"))
    with pytest.raises(AccessError) as unavailable:
        asyncio.run(down.check_separation("keeper.sh", ["picker"]))
    assert unavailable.value.status == 503
