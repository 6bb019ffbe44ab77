"""Four-eyes approvals in the shared store (SQLite, or PostgreSQL with WMSGATE_TEST_DB): a held
export waits for its requester after approval, a stale download claim goes back to approved (a
stale request claim becomes outcome_unknown), and an export not downloaded in time expires."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import update

from authorizer.approvals.store import (
    APPROVED,
    EXPIRED,
    OUTCOME_UNKNOWN,
    ApprovalStore,
    HeldRequest,
    approval_decisions,
    now_ms,
)
from authorizer.db import create_schema, make_engine


def _held(export: dict[str, Any] | None) -> HeldRequest:
    return HeldRequest(
        operation="large_export" if export else "order_delete", required_approvals=1, expires_seconds=3600,
        requester_id="u-finance", requester_username="finance", requester_roles=["finance"], method="GET",
        path="/api/reports/sales.csv", query="", body=None, content_type="", module="reports.sales",
        verb="export", resource_id="", resource={"kind": "aggregate", "attributes": {}},
        decision_input={"subject": {}}, export=export)


def test_an_approved_export_waits_for_its_requester_and_lapses_when_not_downloaded(store_url: str) -> None:
    async def run() -> None:
        engine = make_engine(store_url)
        await create_schema(engine)
        store = ApprovalStore(engine)
        export = await store.create(_held({"rows": 48, "reason": "月度对账", "unmasked_pii": []}))
        request = await store.create(_held(None))
        for approval in (export, request):
            assert await store.decide(approval.approval_id, "u-sup", "supervisor", "approve", "") == "approved"
        approved = await store.get(export.approval_id)
        assert approved is not None and approved.row["export"]["rows"] == 48
        until = approved.download_until()
        assert until is not None and 3_590_000 < until - now_ms() <= 3_600_000  # an hour from the approval
        doc = approved.document()
        assert doc["download"]["url"] == f"/api/reports/sales.csv?wmsgate_export_approval={export.approval_id}"
        assert (await store.get(request.approval_id)).download_until() is None  # type: ignore[union-attr]

        assert await store.claim(export.approval_id) and await store.claim(request.approval_id)
        assert not await store.claim(export.approval_id)  # one download at a time
        assert await store.abandon_stale_claims(0) == [request.approval_id]  # only the request is abandoned
        assert (await store.get(request.approval_id)).status == OUTCOME_UNKNOWN  # type: ignore[union-attr]
        assert (await store.get(export.approval_id)).status == APPROVED  # type: ignore[union-attr]

        assert await store.expire_downloads() == []
        async with engine.begin() as conn:  # the approval was two hours ago
            await conn.execute(update(approval_decisions).where(
                approval_decisions.c.approval_id == export.approval_id).values(decided_ms=now_ms() - 7_200_000))
        assert await store.expire_downloads() == [export.approval_id]
        lapsed = await store.get(export.approval_id)
        assert lapsed is not None and lapsed.status == EXPIRED and "download" not in lapsed.document()
        await engine.dispose()

    asyncio.run(run())
