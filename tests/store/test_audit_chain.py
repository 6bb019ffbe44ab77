"""The audit hash chain and signed checkpoints, on a real store (SQLite, or PostgreSQL with WMSGATE_TEST_DB)."""

from __future__ import annotations

import asyncio
import dataclasses
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


def test_a_batch_hashed_in_slices_is_one_unbroken_chain(tmp_path: Path, store_url: str) -> None:
    """The chain thread hashes a batch HASH_SLICE records at a time (with pauses, or without in a
    batch over PAUSED_BATCH_MAX): each slice must link to the one before it (a slice chained from
    the batch's start would break the link at its first record)."""
    from authorizer.audit.store import HASH_SLICE, PAUSED_BATCH_MAX

    sizes = [2 * HASH_SLICE + 3, HASH_SLICE, 1, PAUSED_BATCH_MAX + 5]
    url, key = _build(tmp_path, store_url, sizes, [3])
    result = _verify(url, key)
    assert result.problems == [] and result.ok
    assert result.records == sum(sizes) and result.head_seq == sum(sizes) and result.checkpoints == 1


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


def test_records_reach_the_driver_as_written_and_read_back_unchanged(tmp_path: Path, store_url: str) -> None:
    """The INSERT goes to the driver with parameters made off the event loop (RowInsert): every
    column, the JSON detail included (nesting, Chinese text, null, numbers), reads back as
    written, and the chain over them verifies."""
    key = tmp_path / "key.pem"
    generate_key(key)
    written = AuditRecord(
        decision_id="driver-1", ts_ms=1_765_000_000_123, decision="deny", reason_code="missing_permission",
        http_status=403, method="POST", path="/api/orders/SO1", query="a=1&b=二", user_id="u-1", username="拣货员",
        roles="picker,viewer", module="orders", verb="edit", resource_id="SO1", warehouse="HF,SH", channel="jd",
        order_type="b2c", reason_zh="缺少权限", reason_en="missing permission", policy_revision="rev-9",
        client_ip="127.0.0.9", user_agent="UA", device_id="dev", upstream_status=None, upstream_ms=None,
        total_ms=1.5, approval_id="ap-1",
        detail={"input": {"resource": {"attributes": {"warehouse": ["HF"]}}}, "note": "拣货", "none": None,
                "n": 12345678901234, "f": 0.125, "flag": True, "list": [1, "二", None]})

    async def run() -> dict[str, object] | None:
        store = AuditStore(store_url)
        await store.create_schema()
        await store.insert_many([written, _record(1)])
        await store.write_checkpoint(load_private_key(key), int(time.time() * 1000))
        row = await store.record("driver-1")
        await store.close()
        return row

    row = asyncio.run(run())
    assert row is not None
    for name, value in written.as_row().items():
        assert row[name] == value, name
    assert _verify(store_url, key).ok


def test_the_insert_takes_named_parameters_where_the_driver_wants_them() -> None:
    """A driver with a named parameter style (psycopg) gets dicts, positional ones tuples."""
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
    from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

    from authorizer.audit.store import RowInsert, chained_rows

    rows = chained_rows([_record(1)], "0" * 64)
    named = RowInsert.compile(PGDialect_psycopg())
    assert named.order is None and "%(decision_id)s" in named.sql
    as_named = named.parameters(rows)
    assert isinstance(as_named[0], dict) and as_named[0]["detail"] == '{"n": 1, "note": "\\u62e3\\u8d27"}'
    positional = RowInsert.compile(SQLiteDialect_aiosqlite())
    assert positional.order is not None and positional.order[0] == "decision_id" and "seq" not in positional.order
    first = positional.parameters(rows)[0]
    assert isinstance(first, tuple) and first[0] == "d0001" and len(first) == len(positional.order)
    # every column is written from the record (no column default is left to the database)
    fields = {f.name for f in dataclasses.fields(AuditRecord)}
    assert set(positional.order) == fields | {"prev_hash", "hash"}
    assert "RETURNING" not in RowInsert.compile(PGDialect_psycopg()).sql
