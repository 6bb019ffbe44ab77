"""Retention: old records are archived to verified files and removed only behind signed markers."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from authorizer.audit import AuditQuery, AuditRecord, AuditStore
from authorizer.audit.export import verify_jsonl
from authorizer.audit.retention import archive_older_than

DAY_MS = 86_400_000


def record(n: int, ts_ms: int) -> AuditRecord:
    return AuditRecord(decision_id=f"d{n}", ts_ms=ts_ms, decision="allow", reason_code="allowed", http_status=200,
                       method="GET", path=f"/api/orders/SO{n}", username="picker.hf", module="orders", verb="view")


async def _trail(store: AuditStore, key: Ed25519PrivateKey) -> int:
    """A new store with 40 records 100 days old (checkpoints after 10, 20, 30), then 10 from
    today (checkpoint after 45)."""
    await store.create_schema()
    now = int(time.time() * 1000)
    old = now - 100 * DAY_MS
    for start in (0, 10, 20):
        await store.insert_many([record(n, old + n) for n in range(start, start + 10)])
        await store.write_checkpoint(key, old + start + 10)
    await store.insert_many([record(n, old + n) for n in range(30, 40)])
    await store.insert_many([record(n, now + n) for n in range(40, 45)])
    await store.write_checkpoint(key, now)
    await store.insert_many([record(n, now + n) for n in range(45, 50)])
    return now


def test_archiving_removes_whole_signed_segments_and_verify_still_passes(tmp_path: Path, store_url: str) -> None:
    key = Ed25519PrivateKey.generate()
    archive = tmp_path / "archive"

    async def run() -> None:
        store = AuditStore(store_url)
        await _trail(store, key)
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=90)
        segments = await archive_older_than(store, key, archive, cutoff)
        # the newest checkpoint before the cutoff vouches for record 30: 1-30 go, 31-40 (old, unsigned) stay
        assert [(s.first_seq, s.last_seq, s.records) for s in segments] == [(1, 30, 30)]
        remaining = [r["decision_id"] async for r in store.iter_chain(AuditQuery())]
        assert remaining == [f"d{n}" for n in range(30, 50)]
        result = await store.verify(key.public_key(), archive_dir=archive)
        assert result.ok, result.problems
        with segments[0].file.open(encoding="utf-8") as fh:
            count, problems = verify_jsonl(fh, key.public_key(), contiguous=True)
        assert count == 30 and problems == []
        assert await archive_older_than(store, key, archive, cutoff) == []  # nothing more is whole and old
        await store.insert_many([record(99, int(time.time() * 1000))])  # the chain goes on from the archive
        assert (await store.verify(key.public_key(), archive_dir=archive)).ok
        await store.close()

    asyncio.run(run())


def test_tampering_with_archives_is_reported(tmp_path: Path, store_url: str) -> None:
    key = Ed25519PrivateKey.generate()
    archive = tmp_path / "archive"

    async def run() -> None:
        store = AuditStore(store_url)
        await _trail(store, key)
        [segment] = await archive_older_than(store, key, archive, dt.datetime.now(dt.UTC)
                                             - dt.timedelta(days=90))
        content = segment.file.read_text(encoding="utf-8")
        segment.file.write_text(content.replace('"picker.hf"', '"nobody"', 1), encoding="utf-8")
        kinds = {p.kind for p in (await store.verify(key.public_key(), archive_dir=archive)).problems}
        assert kinds == {"archive_altered"}
        segment.file.unlink()
        kinds = {p.kind for p in (await store.verify(key.public_key(), archive_dir=archive)).problems}
        assert kinds == {"archive_missing"}
        async with store.engine.begin() as conn:  # forge a marker: no key, no valid signature
            await conn.execute(text("UPDATE audit_archives SET last_seq = 31"))
        kinds = {p.kind for p in (await store.verify(key.public_key())).problems}
        assert "bad_archive" in kinds
        async with store.engine.begin() as conn:  # hide the archive: the first record no longer links
            await conn.execute(text("DELETE FROM audit_archives"))
        result = await store.verify(key.public_key())
        assert not result.ok and result.problems[0].kind == "link_broken" and result.problems[0].seq == 31
        await store.close()

    asyncio.run(run())
