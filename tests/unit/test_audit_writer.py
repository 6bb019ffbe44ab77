"""The audit writer: batches, retries, flushes on close, spools what the database refuses."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest

from authorizer.audit import AuditBackpressure, AuditQuery, AuditRecord, AuditStore, AuditWriter


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


def test_records_are_flushed_and_searchable(tmp_path: Path) -> None:
    async def run() -> list[dict]:
        store = AuditStore(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
        await store.create_schema()
        writer = AuditWriter(store, interval=0.05, batch_size=10)
        await writer.start()
        for n in range(25):
            writer.submit(record(n, user="keeper.hf" if n % 5 == 0 else "picker.hf"))
        await asyncio.sleep(0.3)
        assert writer.pending == 0
        await writer.close()
        rows = await store.search(AuditQuery(user="keeper.hf", since=dt.datetime.now(dt.timezone.utc)
                                             - dt.timedelta(minutes=5)))
        await store.close()
        return rows

    rows = asyncio.run(run())
    assert [r["decision_id"] for r in rows] == ["d20", "d15", "d10", "d5", "d0"]
    assert rows[0]["detail"] == {"n": 20}


def test_failed_flushes_keep_records_until_the_database_returns(tmp_path: Path) -> None:
    async def run() -> int:
        store = AuditStore(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
        await store.create_schema()
        writer = AuditWriter(FlakyStore(store, failures=2), interval=0.02)  # type: ignore[arg-type]
        await writer.start()
        for n in range(5):
            writer.submit(record(n))
        await asyncio.sleep(0.5)
        await writer.close()
        rows = await store.search(AuditQuery(limit=100))
        await store.close()
        return len(rows)

    assert asyncio.run(run()) == 5


def test_records_the_database_refuses_at_shutdown_are_spooled_and_replayed(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"

    async def run() -> int:
        store = AuditStore(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
        await store.create_schema()
        writer = AuditWriter(FlakyStore(store, failures=10_000), interval=10, spool_path=spool)  # type: ignore[arg-type]
        await writer.start()
        for n in range(3):
            writer.submit(record(n))
        await writer.close(attempts=1)
        assert spool.exists()
        again = AuditWriter(store, interval=10, spool_path=spool)
        await again.start()
        await again.close()
        rows = await store.search(AuditQuery(limit=100))
        await store.close()
        return len(rows)

    assert asyncio.run(run()) == 3
    assert not spool.exists()


def test_capacity_bound_signals_backpressure(tmp_path: Path) -> None:
    writer = AuditWriter(AuditStore(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"), max_pending=2)
    writer.submit(record(1))
    writer.check_capacity()
    writer.submit(record(2))
    with pytest.raises(AuditBackpressure):
        writer.check_capacity()
    assert writer.pending == 2
