"""The audit witness: checkpoints copied out of the database's reach catch what the chain cannot
(deleted tail records with their checkpoints, a rollback), on a real store (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from authorizer.audit import AuditRecord, AuditStore, AuditWriter, WriterSettings
from authorizer.audit.chain import Verification, generate_key, load_private_key, load_public_key
from authorizer.audit.witness import DirectoryWitness, WitnessEntry, WitnessError, WitnessPublisher
from tests.support.auditdb import run_sql


def _record(n: int) -> AuditRecord:
    return AuditRecord(decision_id=f"w{n:05d}", ts_ms=int(time.time() * 1000) + n, decision="allow",
                       reason_code="allowed", http_status=200, method="GET", path=f"/api/orders/SO{n}",
                       username="picker.hf", module="orders", verb="view", resource_id=f"SO{n}", detail={"n": n})


class _Trail:
    """A store written by a real AuditWriter with a checkpoint after every batch, witnessed in a folder."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.url, self.key = url, tmp_path / "audit.pem"
        self.witness = DirectoryWitness(tmp_path / "witness")
        self.witness.path.mkdir()
        generate_key(self.key)
        self.written = 0

    def write(self, *batches: int) -> None:
        async def run() -> None:
            store = AuditStore(self.url)
            await store.create_schema()
            writer = AuditWriter(store, WriterSettings(interval=0.05, checkpoint_every_records=1),
                                 signing_key=load_private_key(self.key),
                                 witness=WitnessPublisher(store, self.witness))
            for size in batches:
                for _ in range(size):
                    writer.submit(_record(self.written))
                    self.written += 1
                assert await writer.flush()
            await writer.close()
            await store.close()

        asyncio.run(run())

    def verify(self, witnessed: bool = True) -> Verification:
        async def run() -> Verification:
            store = AuditStore(self.url)
            try:
                return await store.verify(load_public_key(self.key.with_suffix(".pub")),
                                          witness=self.witness if witnessed else None)
            finally:
                await store.close()

        return asyncio.run(run())


def _kinds(result: Verification) -> list[tuple[str, int]]:
    return [(p.kind, p.seq) for p in result.problems]


def test_every_checkpoint_reaches_the_witness_and_an_untouched_trail_verifies(tmp_path: Path, store_url: str) -> None:
    trail = _Trail(tmp_path, store_url)
    trail.write(10, 20, 5)
    entries, problems = trail.witness.entries()
    assert [e.seq for e in entries] == [10, 30, 35] and problems == []
    result = trail.verify()
    assert result.ok, result.problems
    assert result.head_seq == 35


def test_deleting_the_last_100_rows_and_the_newest_checkpoint_fails_only_with_the_witness(
        tmp_path: Path, store_url: str) -> None:
    trail = _Trail(tmp_path, store_url)
    trail.write(150, 120)  # checkpoints at 150 and 270
    run_sql(store_url, "DELETE FROM audit_records WHERE seq > 170")
    run_sql(store_url, "DELETE FROM audit_checkpoints WHERE seq > 170")
    assert trail.verify(witnessed=False).ok, "the chain alone cannot see this (that is why the witness exists)"
    result = trail.verify()
    assert not result.ok
    assert _kinds(result) == [("rolled_back", 270)]
    assert "the trail ends at 170" in result.problems[0].message


def test_a_database_restored_from_an_older_copy_is_a_rollback(tmp_path: Path, store_url: str) -> None:
    trail = _Trail(tmp_path, store_url)
    trail.write(10)
    # the copy an attacker (or a careless restore) brings back: the trail as it was at seq 10
    trail.write(10, 10)
    run_sql(store_url, "DELETE FROM audit_records WHERE seq > 10")
    run_sql(store_url, "DELETE FROM audit_checkpoints WHERE seq > 10")
    assert trail.verify(witnessed=False).ok
    assert _kinds(trail.verify()) == [("rolled_back", 30)]


def test_a_rewritten_tail_with_fresh_hashes_is_a_fork(tmp_path: Path, store_url: str) -> None:
    trail = _Trail(tmp_path, store_url)
    trail.write(10, 10)
    run_sql(store_url, "DELETE FROM audit_records WHERE seq > 10")
    run_sql(store_url, "DELETE FROM audit_checkpoints WHERE seq > 10")
    trail.written = 1000  # different records, correctly chained and checkpointed with the key, take seq 11-20
    trail.write(10)
    assert trail.verify(witnessed=False).ok
    # SQLite reuses seq 11-20 (the witness's record 20 now has another hash); PostgreSQL's sequence
    # moves on to 21-30 (the record the witness vouches for is gone from the middle)
    assert _kinds(trail.verify()) in ([("forked", 20)], [("link_broken", 20)])


def test_a_forged_witness_entry_is_reported_not_trusted(tmp_path: Path, store_url: str) -> None:
    trail = _Trail(tmp_path, store_url)
    trail.write(10)
    forged = WitnessEntry(99, "f" * 64, 1, "nokey", "bm90IGEgc2lnbmF0dXJl")
    trail.witness.publish(forged)
    (trail.witness.path / "checkpoint-00000000000000000042.json").write_text("{not json", encoding="utf-8")
    assert sorted(_kinds(trail.verify())) == [("bad_witness", 42), ("bad_witness", 99)]


def test_a_missing_witness_fails_verification_closed(tmp_path: Path, store_url: str) -> None:
    trail = _Trail(tmp_path, store_url)
    trail.write(5)
    for file in trail.witness.path.iterdir():
        file.unlink()
    trail.witness.path.rmdir()
    result = trail.verify()
    assert not result.ok and [p.kind for p in result.problems] == ["bad_witness"]


def test_an_empty_or_stale_witness_proves_nothing(tmp_path: Path, store_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    trail = _Trail(tmp_path, store_url)
    trail.write(5, 5)
    for file in trail.witness.path.iterdir():  # e.g. the share was not mounted: an empty folder
        file.unlink()
    assert trail.verify().ok, "checkpoints younger than the grace period may still be on their way"
    monkeypatch.setattr("authorizer.audit.witness.WITNESS_GRACE_MS", 0)
    result = trail.verify()
    assert [(p.kind, p.seq) for p in result.problems] == [("unwitnessed", 10)]
    assert "2 checkpoint(s)" in result.problems[0].message


def test_the_witness_never_replaces_an_entry_and_is_never_created(tmp_path: Path) -> None:
    witness = DirectoryWitness(tmp_path / "w")
    entry = WitnessEntry(5, "a" * 64, 1000, "k", "c2ln")
    with pytest.raises(WitnessError, match="does not exist"):
        witness.publish(entry)  # an unmounted share is an error, not a local folder
    assert not (tmp_path / "w").exists()
    (tmp_path / "w").mkdir()
    witness.publish(entry)
    witness.publish(entry)  # the same entry again: a no-op
    with pytest.raises(WitnessError, match="different checkpoint"):
        witness.publish(WitnessEntry(5, "b" * 64, 1000, "k", "c2ln"))
    assert json.loads((tmp_path / "w" / "checkpoint-00000000000000000005.json").read_text())["hash"] == "a" * 64
    assert witness.held_seqs() == [5] and witness.read(5) == entry and witness.read(6) is None


def test_an_unreachable_witness_loses_nothing_and_catches_up(tmp_path: Path, store_url: str) -> None:
    key = tmp_path / "audit.pem"
    generate_key(key)
    share = tmp_path / "share"

    async def run() -> tuple[int, int, str | None, list[int], list[int]]:
        store = AuditStore(store_url)
        await store.create_schema()
        publisher = WitnessPublisher(store, DirectoryWitness(share), retry_seconds=0)
        writer = AuditWriter(store, WriterSettings(interval=0.05, checkpoint_every_records=1),
                             signing_key=load_private_key(key), witness=publisher)
        for n in range(2):
            writer.submit(_record(n))
            assert await writer.flush()  # records and checkpoints are committed although the witness is away
        await publisher.sync()
        failed, lag, error = publisher.failures, publisher.lag, publisher.last_error
        share.mkdir()  # the share is mounted again
        writer.submit(_record(2))
        assert await writer.flush()
        await writer.close()  # the last round copies what waited
        held = [e.seq for e in publisher.witness.entries()[0]]
        # a junk file named for a later seq does not fool the publisher into thinking it is done
        (share / "checkpoint-00000000000000009999.json").write_text("{}", encoding="utf-8")
        for n in range(3, 5):
            writer2 = AuditWriter(store, WriterSettings(checkpoint_every_records=1),
                                  signing_key=load_private_key(key), witness=publisher)
            writer2.submit(_record(n))
            await writer2.close()
        after_junk = [e.seq for e in publisher.witness.entries()[0]]
        await store.close()
        return failed, lag, error, held, after_junk

    failed, lag, error, held, after_junk = asyncio.run(run())
    assert failed >= 1 and lag == 2 and error is not None and "does not exist" in error
    assert held == [1, 2, 3], "every checkpoint signed while the witness was away reaches it, in order"
    assert after_junk == [1, 2, 3, 4, 5]


def test_an_emptied_witness_is_filled_again(tmp_path: Path, store_url: str) -> None:
    trail = _Trail(tmp_path, store_url)
    trail.write(3, 3)
    for file in trail.witness.path.iterdir():
        file.unlink()
    trail.write(2)
    assert [e.seq for e in trail.witness.entries()[0]] == [3, 6, 8], "a starting publisher refills an empty witness"

    async def resync() -> None:
        store = AuditStore(store_url)
        publisher = WitnessPublisher(store, trail.witness)
        await publisher.sync()
        for file in trail.witness.path.iterdir():
            file.unlink()
        await publisher.sync()  # the publisher notices its last entry is gone and starts over
        await store.close()

    asyncio.run(resync())
    assert [e.seq for e in trail.witness.entries()[0]] == [3, 6, 8]
