"""The audit hash chain and signed checkpoints, on a real store (SQLite, or PostgreSQL with WMSGATE_TEST_DB)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from authorizer.audit import AuditRecord, AuditStore
from authorizer.audit.chain import generate_key, load_private_key, load_public_key
from tests.support.auditdb import run_sql


def _record(n: int) -> AuditRecord:
    return AuditRecord(decision_id=f"d{n:04d}", ts_ms=int(time.time() * 1000) + n, decision="allow",
                       reason_code="allowed", http_status=200, method="GET", path=f"/api/orders/SO{n}",
                       username="picker.hf", module="orders", verb="view", resource_id=f"SO{n}",
                       upstream_ms=1.25 * n, total_ms=0.5, detail={"n": n, "note": "拣货"})


def _build(tmp_path: Path, url: str, batches: list[int], checkpoint_after: list[int]) -> tuple[str, Path]:
    key = tmp_path / "key.pem"
    generate_key(key)

    async def run() -> None:
        store = AuditStore(url)
        await store.create_schema()
        n = 0
        for i, size in enumerate(batches):
            await store.insert_many([_record(n + k) for k in range(size)])
            n += size
            if i in checkpoint_after:
                await store.write_checkpoint(load_private_key(key), int(time.time() * 1000))
        await store.close()

    asyncio.run(run())
    return url, key


def _verify(url: str, key: Path):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        store = AuditStore(url)
        try:
            return await store.verify(load_public_key(key.with_suffix(".pub")))
        finally:
            await store.close()
    return asyncio.run(run())


def _sql(url: str, statement: str) -> None:
    run_sql(url, statement)


def test_an_untouched_trail_verifies(tmp_path: Path, store_url: str) -> None:
    url, key = _build(tmp_path, store_url, [10, 5], [1])
    result = _verify(url, key)
    assert result.ok and result.records == 15 and result.checkpoints == 1 and result.head_seq == 15


def test_case_1_an_altered_field_is_named(tmp_path: Path, store_url: str) -> None:
    url, key = _build(tmp_path, store_url, [20], [0])
    _sql(url, "UPDATE audit_records SET username = 'someone.else' WHERE seq = 7")
    result = _verify(url, key)
    assert not result.ok
    assert [(p.kind, p.seq, p.decision_id) for p in result.problems] == [("altered", 7, "d0006")]


def test_a_recomputed_hash_still_breaks_the_next_link(tmp_path: Path, store_url: str) -> None:
    url, key = _build(tmp_path, store_url, [10], [])
    _sql(url, "UPDATE audit_records SET hash = (CASE WHEN substr(hash, 1, 1) = '0' THEN '1' ELSE '0' END) "
              "|| substr(hash, 2) WHERE seq = 4")
    kinds = {(p.kind, p.seq) for p in _verify(url, key).problems}
    assert ("altered", 4) in kinds and ("link_broken", 5) in kinds


def test_case_2_a_removed_middle_record_and_removed_last_records_are_reported(tmp_path: Path, store_url: str) -> None:
    url, key = _build(tmp_path, store_url, [30, 10], [1])
    _sql(url, "DELETE FROM audit_records WHERE seq = 12")
    _sql(url, "DELETE FROM audit_records WHERE seq > 30")
    problems = {(p.kind, p.seq) for p in _verify(url, key).problems}
    assert ("link_broken", 13) in problems
    assert ("truncated", 40) in problems


def test_a_forged_checkpoint_is_caught(tmp_path: Path, store_url: str) -> None:
    url, key = _build(tmp_path, store_url, [5], [0])
    _sql(url, "UPDATE audit_checkpoints SET at_ms = at_ms + 1")
    assert [p.kind for p in _verify(url, key).problems] == ["bad_checkpoint"]
