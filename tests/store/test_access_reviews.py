"""Access review campaigns on a real store (SQLite, or PostgreSQL with WMSGATE_TEST_DB): decisions,
the deadline's default, closing once, revocations and the signed result. Keycloak is a fake here;
tests/integration/test_access_reviews.py and tests/browser/test_console_reviews.py use the real one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from authorizer.audit.chain import generate_key, load_private_key, load_public_key
from authorizer.db import create_schema, make_engine
from authorizer.iam.access import AccessError
from authorizer.iam.review_service import (
    DEADLINE_ACTOR,
    ReviewService,
    campaign_items,
    holds_exactly,
    result_signature_valid,
    run_review_sweeper,
)
from authorizer.iam.reviews import STALE_MS, Campaign, ReviewConflict, ReviewStore
from proxy.management.reviews import closed_record

NOW = 1_800_000_000_000


class FakeAccess:
    """Records the narrowing changes and grant revocations the service asks for."""

    def __init__(self, failing: str | None = None) -> None:
        self.narrowed: list[tuple[str, list[str], dict[str, list[str]]]] = []
        self.revoked_grants: list[tuple[str, str]] = []
        self.failing = failing

    async def narrow(self, username: str, roles: list[str], scope: dict[str, list[str]], reason: str,
                     actor: str) -> None:
        if username == self.failing:
            raise AccessError("identity_provider_error_partial", detail="down")
        assert "access review" in reason
        self.narrowed.append((username, roles, scope))

    async def revoke_grant(self, username: str, grant_id: str, reason: str, actor: str) -> None:
        if grant_id == "gone":
            raise AccessError("grant_not_found", username=username)
        self.revoked_grants.append((username, grant_id))


def _person(username: str, roles: list[tuple[str, int | None]], warehouses: list[tuple[str, int | None]],
            grants: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"username": username, "user_id": f"id-{username}", "enabled": True,
            "roles": [{"role": r, "last_used_ms": used, "permissions": []} for r, used in roles],
            "scope": [{"dimension": "warehouse", "value": w, "last_used_ms": used} for w, used in warehouses],
            "grants": grants or []}


PEOPLE = [
    _person("picker.hf", [("picker", NOW - 1000)], [("HF", NOW - 1000)]),
    _person("keeper.hf", [("warehouse_keeper", None), ("picker", NOW - 5)], [("HF", NOW - 5), ("SH", None)],
            [{"grant_id": "g1", "role": "reviewer", "scope": {"warehouse": ["HF"]}, "valid_from_s": 1,
              "valid_until_s": 2, "last_used_ms": None},
             {"grant_id": "gone", "role": "reviewer", "scope": {"warehouse": ["HF"]}, "valid_from_s": 1,
              "valid_until_s": 2, "last_used_ms": None}]),
    _person("keeper.sz", [("warehouse_keeper", NOW - 7)], [("SZ", NOW - 7)]),
    _person("supervisor", [("ops_supervisor", None)], [("*", NOW - 9)]),
]


def _campaign(**kw: Any) -> Campaign:
    values: dict[str, Any] = {"title": "2026 Q4 合肥仓", "warehouse": "HF", "role": None, "window_days": 90,
                              "deadline_ms": NOW + 3600_000, "unreviewed": "revoke", "created_by": "admin1"}
    return Campaign(**{**values, **kw})


def test_a_warehouse_campaign_asks_who_may_keep_the_warehouse() -> None:
    items = campaign_items(PEOPLE, _campaign())
    assert [(i.username, i.kind, i.name) for i in items] == [
        ("picker.hf", "scope", "warehouse=HF"),
        ("keeper.hf", "scope", "warehouse=HF"), ("keeper.hf", "grant", "g1"), ("keeper.hf", "grant", "gone"),
        ("supervisor", "scope", "warehouse=*")], "roles and other warehouses are not a warehouse campaign's business"
    by_role = campaign_items(PEOPLE, _campaign(warehouse=None, role="warehouse_keeper"))
    assert [(i.username, i.kind, i.name) for i in by_role] == [("keeper.hf", "role", "warehouse_keeper"),
                                                               ("keeper.sz", "role", "warehouse_keeper")]
    by_granted_role = campaign_items(PEOPLE, _campaign(warehouse=None, role="reviewer"))
    assert [(i.username, i.kind, i.name) for i in by_granted_role] == [
        ("keeper.hf", "grant", "g1"), ("keeper.hf", "grant", "gone")], "a granted role is reviewed as its grant"
    assert holds_exactly(PEOPLE, "SZ") and not holds_exactly(PEOPLE, "hf")


def _run(store_url: str, tmp_path: Path, access: FakeAccess, body: Any) -> Any:
    key = tmp_path / "audit.pem"
    if not key.exists():
        generate_key(key)

    async def run() -> Any:
        engine = make_engine(store_url)
        await create_schema(engine)
        try:
            service = ReviewService(ReviewStore(engine), access, load_private_key(key))  # type: ignore[arg-type]
            return await body(service)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_closing_applies_decisions_and_the_default_and_signs_the_result(tmp_path: Path, store_url: str) -> None:
    access = FakeAccess()

    async def body(service: ReviewService) -> tuple[Any, Any, Any]:
        review_id = await service.store.create(_campaign(), campaign_items(PEOPLE, _campaign()), NOW)
        items = (await service.store.campaign(review_id) or {})["items"]
        by_name = {(i["username"], i["name"]): i["item_id"] for i in items}
        await service.store.decide(review_id, by_name[("picker.hf", "warehouse=HF")], "keep", "keeper.hf", None, NOW)
        await service.store.decide(review_id, by_name[("keeper.hf", "warehouse=HF")], "revoke", "admin1", "调岗", NOW)
        await service.store.decide(review_id, by_name[("keeper.hf", "warehouse=HF")], "keep", "admin1", "改主意", NOW)
        await service.store.decide(review_id, by_name[("supervisor", "warehouse=*")], "revoke", "admin1", None, NOW)
        with pytest.raises(ReviewConflict):  # past the deadline nothing is decided any more
            await service.store.decide(review_id, 1, "keep", "admin1", None, NOW + 3600_001)
        done = await service.close(review_id, "admin1", NOW + 10)
        again = await service.close(review_id, "admin2", NOW + 20)
        with pytest.raises(ReviewConflict):
            await service.store.decide(review_id, 1, "keep", "admin1", None, NOW + 30)
        return done, again, await service.store.campaign(review_id)

    done, again, stored = _run(store_url, tmp_path, access, body)
    assert again is None, "a campaign is closed once"
    assert sorted(access.narrowed) == [("supervisor", [], {"warehouse": ["*"]})]
    assert access.revoked_grants == [("keeper.hf", "g1")]  # g1 and "gone" were not reviewed: revoked by default
    outcomes = {(i["username"], i["name"]): (i["decision"], i["effective"], i["outcome"])
                for i in done["result"]["items"]}
    assert outcomes[("keeper.hf", "warehouse=HF")] == ("keep", "keep", "kept")
    assert outcomes[("keeper.hf", "g1")] == ("unreviewed", "revoke", "revoked")
    assert outcomes[("keeper.hf", "gone")] == ("unreviewed", "revoke", "already ended")
    assert outcomes[("supervisor", "warehouse=*")] == ("revoke", "revoke", "revoked")
    assert (done["result"]["revoked"], done["result"]["failed"], done["result"]["closed_by"]) == (2, 0, "admin1")
    public = load_public_key((tmp_path / "audit.pem").with_suffix(".pub"))
    assert result_signature_valid(public, done)
    forged = {**done, "result": {**done["result"], "revoked": 0}}
    assert not result_signature_valid(public, forged)
    assert stored["status"] == "closed" and stored["signature"] == done["signature"]
    assert [i["outcome"] for i in stored["items"]] == [i["outcome"] for i in done["result"]["items"]]


def test_a_close_that_lost_its_claim_writes_nothing(tmp_path: Path, store_url: str) -> None:
    """A close whose process stalled past the stale limit is taken over; the stalled one then
    cannot overwrite outcomes or the signed result."""
    access = FakeAccess()

    async def body(service: ReviewService) -> Any:
        review_id = await service.store.create(_campaign(), campaign_items(PEOPLE, _campaign()), NOW)
        first = await service.store.claim_close(review_id, "admin1", NOW)
        assert first is not None and await service.store.claim_close(review_id, "admin2", NOW) is None
        assert await service.store.reclaim(review_id, "sweeper", NOW + 1000) is None, "not stale yet"
        taken = await service.store.reclaim(review_id, "sweeper", NOW + STALE_MS + 1)
        assert taken is not None and not await service.store.heartbeat(review_id, first, NOW + STALE_MS + 2)
        await service.store.set_outcome(review_id, 1, "revoked", first)
        assert not await service.store.finish(review_id, {"x": 1}, "sig", "kid", first)
        assert await service.store.heartbeat(review_id, taken, NOW + STALE_MS + 3)
        return await service.store.campaign(review_id)

    stored = _run(store_url, tmp_path, access, body)
    assert stored["status"] == "closing" and stored["items"][0]["outcome"] is None and stored["result"] is None


def test_a_close_taken_over_by_the_sweeper_stays_its_starters_and_says_who_completed_it(
        tmp_path: Path, store_url: str) -> None:
    access = FakeAccess()

    async def body(service: ReviewService) -> Any:
        review_id = await service.store.create(_campaign(), campaign_items(PEOPLE, _campaign()), NOW)
        assert await service.store.claim_close(review_id, "admin1", NOW) is not None  # its process then stops
        return await service.close(review_id, DEADLINE_ACTOR, NOW + STALE_MS + 1, reclaim=True)

    done = _run(store_url, tmp_path, access, body)
    assert (done["result"]["closed_by"], done["result"]["completed_by"]) == ("admin1", DEADLINE_ACTOR)
    record = closed_record(done)
    assert record.username == "admin1" and "admin1" in record.reason_zh and "interrupted" in record.reason_en
    assert record.detail["review"]["completed_by"] == DEADLINE_ACTOR


def test_a_failed_revocation_is_an_outcome_not_a_lost_decision(tmp_path: Path, store_url: str) -> None:
    access = FakeAccess(failing="keeper.sz")
    campaign = _campaign(warehouse=None, role="warehouse_keeper", unreviewed="keep")

    async def body(service: ReviewService) -> Any:
        review_id = await service.store.create(campaign, campaign_items(PEOPLE, campaign), NOW)
        for item in (await service.store.campaign(review_id) or {})["items"]:
            if item["username"] == "keeper.sz":
                await service.store.decide(review_id, item["item_id"], "revoke", "admin1", None, NOW)
        return await service.close(review_id, "admin1", NOW)

    done = _run(store_url, tmp_path, access, body)
    assert [(i["username"], i["outcome"]) for i in done["result"]["items"]] == [
        ("keeper.hf", "kept"), ("keeper.sz", "failed: identity_provider_error")]
    assert done["result"]["failed"] == 1 and done["result"]["revoked"] == 0


def test_a_revocation_that_failed_at_the_close_is_retried_and_the_result_signed_again(
        tmp_path: Path, store_url: str) -> None:
    access = FakeAccess(failing="keeper.sz")
    campaign = _campaign(warehouse=None, role="warehouse_keeper", unreviewed="revoke")
    retried: list[dict[str, Any]] = []

    async def record(done: dict[str, Any]) -> None:
        retried.append(done)

    async def nothing(done: dict[str, Any]) -> None:
        return None

    async def body(service: ReviewService) -> Any:
        review_id = await service.store.create(campaign, campaign_items(PEOPLE, campaign), NOW)
        first = await service.close(review_id, "admin1", NOW)
        assert first is not None and (first["result"]["revoked"], first["result"]["failed"]) == (1, 1)
        assert await service.retry_failed(review_id, "retry", NOW + 1) is None, "still failing: nothing changes"
        access.failing = None  # Keycloak is back
        task = asyncio.create_task(run_review_sweeper(service, 0.05, nothing, record))
        for _ in range(100):
            if retried:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        return await service.store.campaign(review_id)

    stored = _run(store_url, tmp_path, access, body)
    assert [i["outcome"] for i in stored["items"]] == ["revoked", "revoked"]
    [again] = retried
    assert list(again["retried"].values()) == ["revoked"]
    assert (again["result"]["failed"], again["result"]["revoked"]) == (0, 2)
    public = load_public_key((tmp_path / "audit.pem").with_suffix(".pub"))
    assert result_signature_valid(public, again) and stored["signature"] == again["signature"]


def test_the_sweeper_closes_campaigns_past_their_deadline(tmp_path: Path, store_url: str) -> None:
    access = FakeAccess()
    closed: list[dict[str, Any]] = []

    async def record(done: dict[str, Any]) -> None:
        closed.append(done)

    async def body(service: ReviewService) -> Any:
        past = _campaign(deadline_ms=1000)
        later = _campaign(title="later")
        await service.store.create(past, campaign_items(PEOPLE, past), NOW)
        await service.store.create(later, campaign_items(PEOPLE, later), NOW)
        task = asyncio.create_task(run_review_sweeper(service, 0.05, record))
        for _ in range(100):
            if closed:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        return await service.store.campaigns()

    campaigns = _run(store_url, tmp_path, access, body)
    assert [c["status"] for c in sorted(campaigns, key=lambda c: c["title"])] == ["closed", "open"]
    assert len(closed) == 1 and closed[0]["result"]["closed_by"] == "wmsgate-review-deadline"
    outcomes = {i["name"]: i["outcome"] for i in closed[0]["result"]["items"]}
    assert outcomes.pop("gone") == "already ended"
    assert set(outcomes.values()) == {"revoked"}, "nobody reviewed: everything is revoked"
