"""Retention: old audit records are archived to verified files and removed only as whole
segments behind a signed checkpoint, so ``wmsgate audit verify`` still passes afterwards.

A segment runs from the first record still in the store to the newest signed
checkpoint whose records are all older than the cutoff. It is written as a JSONL
export (records in chain order, then the checkpoint as its ``chain_head``), fsync'd,
read back and verified (every hash, every link, no gap, the signed head is its last
record, it joins the previous archive) before a signed archive marker is stored
and the records are deleted in one transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authorizer.audit.chain import GENESIS
from authorizer.audit.export import verify_jsonl
from authorizer.audit.store import ArchiveConflict, ArchiveMarker, AuditStore

log = logging.getLogger(__name__)


class ArchiveError(Exception):
    """A written archive did not verify; nothing was removed."""


@dataclass(frozen=True)
class ArchivedSegment:
    """One archived and removed segment: ``first_seq..last_seq`` (inclusive), its file and SHA-256."""

    first_seq: int
    last_seq: int
    records: int
    file: Path
    sha256: str


async def archive_older_than(store: AuditStore, private_key: Any, archive_dir: Path, cutoff: dt.datetime,
                             max_segments: int = 1000) -> list[ArchivedSegment]:
    """Archive and remove every whole segment older than ``cutoff`` (UTC).

    Args:
        store: the audit store.
        private_key: the Ed25519 checkpoint key (it signs the archive markers).
        archive_dir: where segment files go (created if missing).
        cutoff: records at or after this instant stay.
        max_segments: stop after this many segments (one run stays bounded).

    Returns:
        The segments archived, oldest first (empty when nothing is old enough).

    Raises:
        ArchiveError: a segment file did not verify (the records stay).
        authorizer.audit.store.ArchiveConflict: another process archived or changed the segment.
        OSError: the archive folder cannot be written.
    """
    if cutoff.tzinfo is None:
        cutoff = cutoff.replace(tzinfo=dt.UTC)
    cutoff_ms = int(cutoff.timestamp() * 1000)
    archive_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once per run, a local folder
    done: list[ArchivedSegment] = []
    while len(done) < max_segments:
        candidate = await store.archive_candidate(cutoff_ms)
        if candidate is None:
            break
        first_seq, checkpoint = candidate
        done.append(await _archive_segment(store, private_key, archive_dir, first_seq, checkpoint))
    return done


async def _archive_segment(store: AuditStore, private_key: Any, archive_dir: Path, first_seq: int,
                           checkpoint: dict[str, Any]) -> ArchivedSegment:
    last_seq = int(checkpoint["seq"])
    previous = await store.latest_archive()
    expected_prev = previous["last_hash"] if previous else GENESIS
    name = f"audit-{first_seq:012d}-{last_seq:012d}.jsonl"
    final = archive_dir / name
    partial = archive_dir / f".{name}.{os.getpid()}.partial"
    digest = hashlib.sha256()
    count = 0
    first_prev: str | None = None
    with partial.open("wb") as fh:
        async for row in store.iter_range(first_seq, last_seq):
            if first_prev is None:
                first_prev = row["prev_hash"]
            line = (json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
            fh.write(line)
            digest.update(line)
            count += 1
        tail = (json.dumps({"chain_head": checkpoint}, ensure_ascii=False) + "\n").encode("utf-8")
        fh.write(tail)
        digest.update(tail)
        fh.flush()
        os.fsync(fh.fileno())
    with partial.open(encoding="utf-8") as fh:
        checked, problems = verify_jsonl(fh, private_key.public_key(), contiguous=True)
    if problems or checked != count or first_prev != expected_prev:
        partial.unlink(missing_ok=True)
        details = "; ".join(f"{p.kind} at {p.seq}" for p in problems) or "the segment does not join the chain"
        raise ArchiveError(f"archive of records {first_seq}-{last_seq} did not verify: {details}")
    os.replace(partial, final)
    dir_fd = os.open(archive_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    sha256 = digest.hexdigest()
    at_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    await store.remove_archived(private_key, ArchiveMarker(first_seq, last_seq, expected_prev, str(checkpoint["hash"]),
                                                           count, name, sha256, at_ms))
    log.warning("archived audit records %d-%d (%d) to %s", first_seq, last_seq, count, final)
    return ArchivedSegment(first_seq, last_seq, count, final, sha256)


async def run_retention_forever(store: AuditStore, private_key: Any, archive_dir: Path, retention_days: float,
                                every_seconds: float) -> None:
    """Archive records older than ``retention_days`` every ``every_seconds`` until cancelled.

    Failures are logged and retried at the next run; they never remove records that
    were not archived and verified. Several proxy processes may run this at once: the
    chain lock and the archive marker's continuity check let only one remove a segment.
    """
    while True:
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=retention_days)
        try:
            await archive_older_than(store, private_key, archive_dir, cutoff)
        except ArchiveConflict as exc:
            log.info("audit archive skipped: %s", exc)
        except Exception:
            log.exception("audit archive run failed; will retry")
        await asyncio.sleep(every_seconds)
