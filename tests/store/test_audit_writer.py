"""The audit writer: batches, retries, flushes on close, spools what the database refuses."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest

from authorizer.audit import (
    AuditBackpressure,
    AuditQuery,
    AuditRecord,
    AuditStore,
    AuditUnavailable,
    AuditWriter,
    Spool,
    WriterSettings,
)


def record(n: int, user: str = "picker.hf", module: str = "orders") -> AuditRecord:
    return AuditRecord(decision_id=f"d{n}", ts_ms=int(time.time() * 1000) + n, decision="allow",
                       reason_code="allowed", http_status=200, method="GET", path=f"/api/orders/SO{n}",
                       username=user, module=module, verb="view", resource_id=f"SO{n}", detail={"n": n})


class FlakyStore:
    """A store that fails ``failures`` times before delegating."""

    def __init__(self, inner: AuditStore, failures: int) -> None:
        self.inner, self.failures = inner, failures

    async def insert_many(self, records: list[AuditRecord]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("database down")
        await self.inner.insert_many(records)


def test_records_are_flushed_and_searchable(tmp_path: Path, store_url: str) -> None:
    async def run() -> list[dict]:
        store = AuditStore(store_url)
        await store.create_schema()
        writer = AuditWriter(store, WriterSettings(interval=0.05, batch_size=10))
        await writer.start()
        for n in range(25):
            writer.submit(record(n, user="keeper.hf" if n % 5 == 0 else "picker.hf"))
        await asyncio.sleep(0.3)
        assert writer.pending == 0
        await writer.close()
        rows = await store.search(AuditQuery(user="keeper.hf", since=dt.datetime.now(dt.UTC)
                                             - dt.timedelta(minutes=5)))
        await store.close()
        return rows

    rows = asyncio.run(run())
    assert [r["decision_id"] for r in rows] == ["d20", "d15", "d10", "d5", "d0"]
    assert rows[0]["detail"] == {"n": 20}


def test_failed_flushes_keep_records_until_the_database_returns(tmp_path: Path, store_url: str) -> None:
    async def run() -> int:
        store = AuditStore(store_url)
        await store.create_schema()
        writer = AuditWriter(FlakyStore(store, failures=2), WriterSettings(interval=0.02))  # type: ignore[arg-type]
        await writer.start()
        for n in range(5):
            writer.submit(record(n))
        await asyncio.sleep(0.5)
        await writer.close()
        rows = await store.search(AuditQuery(limit=100))
        await store.close()
        return len(rows)

    assert asyncio.run(run()) == 5


def test_records_the_database_refuses_at_shutdown_are_spooled_and_replayed(tmp_path: Path, store_url: str) -> None:
    spool = tmp_path / "spool.jsonl"

    async def run() -> int:
        store = AuditStore(store_url)
        await store.create_schema()
        writer = AuditWriter(FlakyStore(store, failures=10_000), WriterSettings(interval=10), spool=Spool(spool))  # type: ignore[arg-type]
        await writer.start()
        for n in range(3):
            writer.submit(record(n))
        await writer.close(attempts=1)
        assert spool.exists()
        again = AuditWriter(store, WriterSettings(interval=10), spool=Spool(spool))
        await again.start()
        await again.close()
        rows = await store.search(AuditQuery(limit=100))
        await store.close()
        return len(rows)

    assert asyncio.run(run()) == 3
    assert not spool.exists()


class SwitchableStore:
    """A store whose database can be switched off and on."""

    def __init__(self, inner: AuditStore) -> None:
        self.inner, self.down, self.attempts = inner, False, 0

    async def insert_many(self, records: list[AuditRecord]) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("database down")
        await self.inner.insert_many(records)


def test_an_outage_while_running_spools_records_and_replays_them_in_order(tmp_path: Path, store_url: str) -> None:
    spool_file = tmp_path / "spool.jsonl"

    async def run() -> tuple[list[str], bool, int, bool]:
        store = AuditStore(store_url)
        await store.create_schema()
        db = SwitchableStore(store)
        writer = AuditWriter(db, WriterSettings(interval=0.02, max_backoff=0.05), spool=Spool(spool_file))  # type: ignore[arg-type]
        await writer.start()
        for n in range(0, 10):
            writer.submit(record(n))
        await asyncio.sleep(0.1)
        db.down = True
        for n in range(10, 30):
            writer.submit(record(n))
            if n == 20:
                await writer.commit(record(1000 + n))  # high-risk during the outage: durable in the spool
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
        spooled_lines = spool_file.read_text(encoding="utf-8").count("\n")
        assert writer.spooled == spooled_lines == 21
        writer.check_capacity()  # a spool with room keeps the proxy serving
        db.down = False
        for n in range(30, 35):
            writer.submit(record(n))
        await asyncio.sleep(0.3)
        await writer.close()
        chain = [r["decision_id"] async for r in store.iter_chain(AuditQuery())]
        intact = (await store.verify(None)).ok  # no checkpoints were written: the key is not needed
        await store.close()
        return chain, spool_file.exists(), writer.pending, intact

    chain, spool_left, pending, intact = asyncio.run(run())
    expected = [f"d{n}" for n in range(0, 21)] + ["d1020"] + [f"d{n}" for n in range(21, 35)]
    assert chain == expected
    assert not spool_left and pending == 0 and intact


def test_capacity_bound_signals_backpressure(tmp_path: Path, store_url: str) -> None:
    writer = AuditWriter(AuditStore(store_url), WriterSettings(max_pending=2))
    writer.submit(record(1))
    writer.check_capacity()
    writer.submit(record(2))
    with pytest.raises(AuditBackpressure):
        writer.check_capacity()
    assert writer.pending == 2


def test_a_full_spool_refuses_new_requests_and_high_risk_answers(tmp_path: Path, store_url: str) -> None:
    async def run() -> None:
        store = AuditStore(store_url)
        await store.create_schema()
        db = SwitchableStore(store)
        db.down = True
        writer = AuditWriter(db, WriterSettings(interval=10), spool=Spool(tmp_path / "spool.jsonl", max_bytes=600))  # type: ignore[arg-type]
        writer.submit(record(1))
        assert not await writer.flush()
        assert writer.spooled == 1
        writer.check_capacity()  # the spool still has room
        with pytest.raises(AuditUnavailable):
            await writer.commit(record(2))  # does not fit: it stays in memory, the caller must not answer
        assert writer.pending == 2 and writer.spooled == 1
        with pytest.raises(AuditBackpressure):  # a record only in memory: refuse new requests
            writer.check_capacity()
        writer.submit(record(3))
        assert not await writer.flush()
        with pytest.raises(AuditBackpressure):
            writer.check_capacity()
        db.down = False
        assert await writer.flush()
        chain = [r["decision_id"] async for r in store.iter_chain(AuditQuery())]
        assert chain == ["d1", "d2", "d3"]
        await store.close()

    asyncio.run(run())


def test_a_record_committed_during_an_outage_survives_a_crash(tmp_path: Path, store_url: str) -> None:
    """kill -9 right after the answer: no close(), the next process replays the spool."""
    spool_file = tmp_path / "spool.jsonl"

    async def run() -> list[str]:
        store = AuditStore(store_url)
        await store.create_schema()
        db = SwitchableStore(store)
        db.down = True
        crashed = AuditWriter(db, WriterSettings(interval=10), spool=Spool(spool_file))  # type: ignore[arg-type]
        await crashed.commit(record(7))
        with spool_file.open("ab") as fh:  # a later append cut short by the crash
            fh.write(b'{"decision_id": "torn')
        again = AuditWriter(store, WriterSettings(interval=10), spool=Spool(spool_file))
        assert again.spooled == 1
        assert await again.flush()
        chain = [r["decision_id"] async for r in store.iter_chain(AuditQuery())]
        await store.close()
        return chain

    assert asyncio.run(run()) == ["d7"]
    assert not spool_file.exists()
    assert (tmp_path / "spool.jsonl.torn").read_text(encoding="utf-8").startswith('{"decision_id": "torn')


def test_retried_writes_whose_acknowledgement_was_lost_are_not_doubled(tmp_path: Path, store_url: str) -> None:
    async def run() -> list[str]:
        store = AuditStore(store_url)
        await store.create_schema()
        await store.insert_many([record(1), record(2)])
        await store.insert_many([record(2), record(3)])  # d2 committed before, its ack lost
        chain = [r["decision_id"] async for r in store.iter_chain(AuditQuery())]
        assert (await store.verify(None)).ok
        await store.close()
        return chain

    assert asyncio.run(run()) == ["d1", "d2", "d3"]
