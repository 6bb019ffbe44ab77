"""The gateway's copy of the alerting service's step-up demands: the newest alert per person
counts, a failed poll keeps the last copy, and the policy subject carries the alert time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from authorizer.authn.identity import Principal
from authorizer.authn.step_up_demands import DemandsUnavailable, StepUpDemands


def test_the_newest_alert_per_person_counts_and_a_failed_poll_keeps_the_last_copy() -> None:
    answers: list[Any] = [[{"user_id": "u1", "since_ms": 1000, "alert_id": "a"},
                           {"user_id": "u1", "since_ms": 5000, "alert_id": "b"},
                           {"user_id": 7, "since_ms": 1, "alert_id": "x"},  # malformed: skipped
                           {"user_id": "u2", "since_ms": "soon", "alert_id": "y"}],
                          DemandsUnavailable("down"), []]

    async def fetch() -> list[dict[str, Any]]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    demands = StepUpDemands(fetch)
    keeper, other = Principal("u1", "keeper.sz", ("warehouse_keeper",)), Principal("u2", "x", ())

    async def run() -> None:
        await demands.refresh()
        assert demands.since_ms(keeper) == 5000 and demands.since_ms(other) is None
        with pytest.raises(DemandsUnavailable):
            await demands.refresh()
        assert demands.since_ms(keeper) == 5000  # never dropped because a poll failed
        await demands.refresh()
        assert demands.since_ms(keeper) is None  # resolved: gone

    asyncio.run(run())


def test_the_policy_subject_carries_the_alert_time_only_when_there_is_one() -> None:
    plain = Principal("u1", "keeper.sz", ("warehouse_keeper",))
    assert "alert_since_ms" not in plain.policy_subject()
    flagged = Principal("u1", "keeper.sz", ("warehouse_keeper",), alert_since_ms=5000)
    assert flagged.policy_subject()["alert_since_ms"] == 5000
