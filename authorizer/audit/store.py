"""The audit trail store: SQLAlchemy Core over SQLite (default) or PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authorizer.audit.chain import (
    GENESIS,
    Problem,
    Verification,
    archive_message,
    chain_hash,
    key_id,
    message_signature_valid,
    sign,
    sign_message,
    signature_valid,
)
from authorizer.audit.record import AuditRecord
from authorizer.audit.witness import ChainExtent, Witness, read_witness, witness_problems
from authorizer.db import create_schema, make_engine, metadata

audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True),
    Column("decision_id", String(64), nullable=False, unique=True),
    Column("ts_ms", BigInteger, nullable=False),
    Column("user_id", String(64), nullable=False, default=""),
    Column("username", String(255), nullable=False, default=""),
    Column("roles", Text, nullable=False, default=""),
    Column("module", String(64), nullable=False, default=""),
    Column("verb", String(32), nullable=False, default=""),
    Column("resource_id", Text, nullable=False, default=""),
    Column("warehouse", Text, nullable=False, default=""),
    Column("channel", Text, nullable=False, default=""),
    Column("order_type", Text, nullable=False, default=""),
    Column("decision", String(8), nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("reason_zh", Text, nullable=False, default=""),
    Column("reason_en", Text, nullable=False, default=""),
    Column("policy_revision", String(128), nullable=False, default=""),
    Column("client_ip", String(64), nullable=False, default=""),
    Column("user_agent", Text, nullable=False, default=""),
    Column("device_id", String(128), nullable=False, default=""),
    Column("method", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("query", Text, nullable=False, default=""),
    Column("http_status", Integer, nullable=False),
    Column("upstream_status", Integer, nullable=True),
    Column("upstream_ms", Float, nullable=True),
    Column("total_ms", Float, nullable=False, default=0.0),
    Column("detail", JSON, nullable=False, default=dict),
    Column("approval_id", String(64), nullable=True),
    Column("prev_hash", String(64), nullable=True),
    Column("hash", String(64), nullable=True),
    Index("audit_ts", "ts_ms"),
    Index("audit_user_ts", "username", "ts_ms"),
    Index("audit_userid_ts", "user_id", "ts_ms"),
    Index("audit_module_verb_ts", "module", "verb", "ts_ms"),
    Index("audit_resource", "resource_id"),
    Index("audit_approval", "approval_id"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True),
    Column("hash", String(64), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", Text, nullable=False),
)

audit_archives = Table(
    "audit_archives",
    metadata,
    Column("first_seq", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("first_prev_hash", String(64), nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("file", Text, nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", Text, nullable=False),
)


class ArchiveConflict(Exception):
    """The segment changed under an archive run (another process archived it, or records differ)."""


_CHAIN_LOCK = 4_242_001  # PostgreSQL advisory lock id serializing chain appends
#: Records the chain thread hashes between two pauses (about 1 ms of work; see RowInsert.chained).
HASH_SLICE = 16
#: The chain thread's pause between two slices, seconds.
GIL_PAUSE_SECONDS = 0.0001
#: Batches of more records than this are hashed without pauses: the writer is behind (a burst),
#: and catching up matters more than the loop's latency (at 1,000 req/s a batch is about 200).
PAUSED_BATCH_MAX = 400
#: Rows as a database driver takes them: tuples (positional parameter styles) or dicts (named ones).
DriverParameters = list[tuple[Any, ...]] | list[dict[str, Any]]


@dataclass(frozen=True)
class AuditQuery:
    """Search filters; None means "any". Times are UTC; results are newest first.

    Attributes:
        since, until: time range (``until`` exclusive).
        user: username or user id.
        module, verb, resource_id, warehouse, channel, decision, client_ip, approval_id, device_id: exact matches.
        role: one of the person's roles at the time.
        limit, offset: page window.
    """

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    user: str | None = None
    module: str | None = None
    verb: str | None = None
    resource_id: str | None = None
    warehouse: str | None = None
    channel: str | None = None
    decision: str | None = None
    client_ip: str | None = None
    approval_id: str | None = None
    device_id: str | None = None
    role: str | None = None
    limit: int = 100
    offset: int = 0


def _ms(ts: dt.datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return int(ts.timestamp() * 1000)


@dataclass(frozen=True)
class ArchiveMarker:
    """What an archived segment of the chain was: kept (signed) in place of its records.

    Attributes:
        first_seq, last_seq: the segment's record sequence numbers (inclusive).
        first_prev_hash: the chain hash just before the segment; last_hash: its last record's hash.
        records: how many records it holds.
        file, file_sha256: the archive file's name and SHA-256 (hex).
        at_ms: when it was archived, milliseconds since the epoch (UTC).
    """

    first_seq: int
    last_seq: int
    first_prev_hash: str
    last_hash: str
    records: int
    file: str
    file_sha256: str
    at_ms: int



def chained_rows(records: list[AuditRecord], prev: str) -> list[dict[str, Any]]:
    """The records as rows linked into the hash chain after ``prev`` (each row's ``prev_hash``
    and ``hash``), in order."""
    rows = []
    for record in records:
        row = record.as_row()
        row["prev_hash"] = prev
        row["hash"] = prev = chain_hash(row, prev)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class RowInsert:
    """The audit INSERT as the database driver takes it, compiled once per dialect.

    SQLAlchemy's ``execute(insert(table), rows)`` processes every row's parameters in Python on the
    event loop (about 50 us a row here, so a 1,000-record batch held the loop for tens of
    milliseconds: docs/performance.md). The rows are instead put in the driver's form beside the
    hashing, off the loop, and handed to the driver as they are (``exec_driver_sql``).

    Attributes:
        sql: the statement in the dialect's parameter style.
        order: the columns in parameter order (positional styles), or None (named styles).
        serializer: writes ``detail`` as JSON text (the engine's ``json_serializer``, else ``json.dumps``).
    """

    sql: str
    order: tuple[str, ...] | None
    serializer: Callable[[Any], str] = json.dumps

    @classmethod
    def compile(cls, dialect: Dialect) -> RowInsert:
        """The INSERT of every column but ``seq`` for ``dialect`` (an engine's ``.dialect``)."""
        columns = [c.name for c in audit_records.c if c.name != "seq"]
        # inline: no RETURNING of the new seq (PostgreSQL would produce a row per record for nothing)
        compiled = insert(audit_records).inline().compile(dialect=dialect, column_keys=columns)
        serializer = getattr(dialect, "_json_serializer", None) or json.dumps  # the engine's, as SQLAlchemy would
        return cls(str(compiled), tuple(compiled.positiontup or ()) if compiled.positional else None, serializer)

    def parameters(self, rows: list[dict[str, Any]]) -> DriverParameters:
        """``rows`` as driver parameters: ``detail`` written as JSON text (what the JSON column's
        own bind processing writes), in column order or by name."""
        dumps = self.serializer
        if self.order is None:
            return [{**row, "detail": dumps(row["detail"])} for row in rows]
        order = self.order
        return [tuple(dumps(row[c]) if c == "detail" else row[c] for c in order) for row in rows]

    def chained(self, records: list[AuditRecord], prev: str) -> DriverParameters:
        """:func:`chained_rows` then :meth:`parameters`, for the chain's own thread: HASH_SLICE
        records at a time, with a pause of ``GIL_PAUSE_SECONDS`` between slices.

        Why the pause: the thread holds the GIL while it hashes, and the event loop, which gives
        it up on every socket read or write, would otherwise wait up to the interpreter's switch
        interval (5 ms) to get it back, every time (the p99 the gateway adds at 1,000 req/s). A
        sleeping thread leaves the GIL to the loop at once. Handing the slices over one by one
        from the loop instead was measured and not kept: each slice then waited for a turn of the
        busy loop, and under a burst of 3,500 req/s the queue grew to 15,000 records. A batch of
        more than PAUSED_BATCH_MAX records (the writer is behind) is hashed without pauses.
        """
        parameters: list[Any] = []
        pause = len(records) <= PAUSED_BATCH_MAX
        for start in range(0, len(records), HASH_SLICE):
            if start and pause:
                time.sleep(GIL_PAUSE_SECONDS)
            rows = chained_rows(records[start:start + HASH_SLICE], prev)
            prev = rows[-1]["hash"]
            parameters.extend(self.parameters(rows))
        return parameters


class AuditStore:
    """Reads and writes audit records.

    Args:
        url: SQLAlchemy async URL, e.g. ``sqlite+aiosqlite:///path/audit.db`` or
            ``postgresql+asyncpg://user:pw@host/db``; ignored when ``engine`` is given.
        engine: an engine shared with the rest of the store.
    """

    def __init__(self, url: str = "", engine: AsyncEngine | None = None) -> None:
        self.engine: AsyncEngine = engine or make_engine(url)
        self._owns_engine = engine is None
        self._append_lock = asyncio.Lock()  # one chain append at a time in this process
        self._row_insert = RowInsert.compile(self.engine.dialect)
        # one thread of its own for the chain's hashing: batch after batch lands in the same
        # malloc arena (spread over the default executor's threads, each kept its own resident)
        self._chain_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-chain")

    async def create_schema(self) -> None:
        """Create missing tables, indexes and columns (idempotent)."""
        await create_schema(self.engine)

    async def _lock_chain(self, conn: AsyncConnection) -> None:
        """Serialize chain appends across processes for the rest of the transaction.

        PostgreSQL: a transaction-scoped advisory lock. SQLite: a write statement that
        matches nothing, so the transaction holds the database's write lock before it
        reads the chain head (the driver would otherwise start it only at the INSERT,
        after another process could have appended).
        """
        if self.engine.dialect.name == "postgresql":
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({_CHAIN_LOCK})"))
        elif self.engine.dialect.name == "sqlite":
            await conn.execute(text("DELETE FROM audit_checkpoints WHERE 1 = 0"))

    async def insert_many(self, records: list[AuditRecord]) -> None:
        """Append records to the chain in one transaction (all or nothing), in the given order.

        Appends are serialized (PostgreSQL: an advisory lock; SQLite: one writer), so the
        chain order is the ``seq`` order. Idempotent: records whose ``decision_id`` is
        already stored are skipped, so retrying a write whose acknowledgement was lost
        (or replaying a spool) never doubles a record.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database refused or is unreachable.
        """
        if not records:
            return
        async with self._append_lock, self.engine.begin() as conn:
            await self._lock_chain(conn)
            ids = [r.decision_id for r in records]
            stored = set((await conn.execute(select(audit_records.c.decision_id)
                                             .where(audit_records.c.decision_id.in_(ids)))).scalars())
            if stored:
                records = [r for r in records if r.decision_id not in stored]
                if not records:
                    return
            prev = (await conn.execute(select(audit_records.c.hash).where(audit_records.c.hash.is_not(None))
                                       .order_by(audit_records.c.seq.desc()).limit(1))).scalar() or GENESIS
            # hashing a batch (up to batch_size records) and making its parameters would hold the
            # event loop for milliseconds: both run in a thread, the driver takes the result as is
            statement = self._row_insert
            parameters = await asyncio.get_running_loop().run_in_executor(
                self._chain_thread, statement.chained, records, prev)
            await conn.exec_driver_sql(statement.sql, parameters)

    async def write_checkpoint(self, private_key: Any, at_ms: int) -> tuple[int, str] | None:
        """Sign the newest record (its seq and hash) as a checkpoint; None when there is nothing new."""
        async with self._append_lock, self.engine.begin() as conn:
            await self._lock_chain(conn)
            head = (await conn.execute(select(audit_records.c.seq, audit_records.c.hash)
                                       .where(audit_records.c.hash.is_not(None))
                                       .order_by(audit_records.c.seq.desc()).limit(1))).first()
            if head is None:
                return None
            last = (await conn.execute(select(func.max(audit_checkpoints.c.seq)))).scalar()
            if last is not None and last >= head.seq:
                return None
            await conn.execute(insert(audit_checkpoints), {
                "seq": head.seq, "hash": head.hash, "at_ms": at_ms, "key_id": key_id(private_key.public_key()),
                "signature": sign(private_key, head.seq, head.hash, at_ms)})
        return int(head.seq), str(head.hash)

    async def verify(self, public_key: Any, since_seq: int | None = None,
                     archive_dir: Path | None = None, witness: Witness | None = None) -> Verification:
        """Walk the chain (from ``since_seq``, trusting the link to the record before it) and
        check every checkpoint and archive marker. Archived segments must be signed and
        join each other and the first remaining record; with ``archive_dir`` their files
        must also be present and unchanged. With ``witness``, every checkpoint the witness
        holds must match the trail (:func:`authorizer.audit.witness.witness_problems`):
        this catches deleted tail records and rollbacks that the chain alone cannot.

        Returns:
            What was found; :attr:`Verification.ok` is False when anything was altered,
            inserted, removed or forged.
        """
        t = audit_records.c
        problems: list[Problem] = []
        count = 0
        head: tuple[int, str] | None = None
        hashes: dict[int, str] = {}
        async with self.engine.connect() as conn:
            archives = [dict(r) for r in (await conn.execute(select(audit_archives).order_by(
                audit_archives.c.first_seq))).mappings()]
            problems.extend(_archive_problems(archives, public_key, archive_dir))
            archived_to = archives[-1]["last_seq"] if archives else 0
            prev: str | None = archives[-1]["last_hash"] if archives else None
            if since_seq is not None:
                prev = (await conn.execute(select(t.hash).where(t.seq < since_seq).order_by(t.seq.desc())
                                           .limit(1))).scalar() or prev
            stmt = select(audit_records).order_by(t.seq)
            if since_seq is not None:
                stmt = stmt.where(t.seq >= since_seq)
            unchained = 0
            result = await conn.stream(stmt)
            async for mapping in result.mappings():
                row = dict(mapping)
                count += 1
                if row["hash"] is None:
                    unchained += 1
                    continue
                expected_prev = prev if prev is not None else GENESIS
                if row["prev_hash"] != expected_prev:
                    problems.append(Problem("link_broken", row["seq"], row["decision_id"],
                                            "records were removed or inserted just before this one"))
                if chain_hash(row, row["prev_hash"]) != row["hash"]:
                    problems.append(Problem("altered", row["seq"], row["decision_id"],
                                            "this record's content does not match its hash"))
                prev = row["hash"]
                hashes[row["seq"]] = row["hash"]
                head = (row["seq"], row["hash"])
            if unchained:
                problems.append(Problem("unchained", 0, "", f"{unchained} records predate the hash chain"))
            checkpoints = (await conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq))).all()
        first_seq = min(hashes) if hashes else None
        for cp in checkpoints:
            if not signature_valid(public_key, cp.seq, cp.hash, cp.at_ms, cp.signature):
                problems.append(Problem("bad_checkpoint", cp.seq, "", "checkpoint signature is not valid"))
                continue
            if (since_seq is not None and cp.seq < since_seq) or cp.seq <= archived_to:
                continue
            if cp.seq in hashes:
                if hashes[cp.seq] != cp.hash:
                    problems.append(Problem("altered", cp.seq, "", "the record a checkpoint vouches for was changed"))
            elif head is None or cp.seq > head[0]:
                problems.append(Problem("truncated", cp.seq, "",
                                        f"records up to seq {cp.seq} were signed but the trail ends at "
                                        f"{head[0] if head else 'nothing'}"))
            elif first_seq is None or cp.seq >= first_seq:
                problems.append(Problem("link_broken", cp.seq, "", "a record a checkpoint vouches for was removed"))
        if witness is not None:
            entries, unreadable = await asyncio.to_thread(read_witness, witness)
            problems.extend(unreadable)
            signed = tuple((int(cp.seq), int(cp.at_ms)) for cp in checkpoints
                           if signature_valid(public_key, cp.seq, cp.hash, cp.at_ms, cp.signature))
            problems.extend(witness_problems(entries, public_key, hashes, ChainExtent(
                head[0] if head else None, archived_to, since_seq, signed, int(time.time() * 1000))))
        return Verification(count, len(checkpoints), head[0] if head else None, head[1] if head else None, problems)

    async def search(self, q: AuditQuery) -> list[dict[str, Any]]:
        """Records matching ``q``, newest first, as column dicts."""
        return [row async for row in self.iter_search(q)]

    def _filtered(self, q: AuditQuery) -> Any:
        t = audit_records.c
        stmt = select(audit_records)
        if q.since is not None:
            stmt = stmt.where(t.ts_ms >= _ms(q.since))
        if q.until is not None:
            stmt = stmt.where(t.ts_ms < _ms(q.until))
        if q.user:
            stmt = stmt.where((t.username == q.user) | (t.user_id == q.user))
        for name in ("module", "verb", "resource_id", "warehouse", "channel", "decision", "client_ip", "approval_id",
                     "device_id"):
            value = getattr(q, name)
            if value:
                stmt = stmt.where(getattr(t, name) == value)
        if q.role:
            stmt = stmt.where((t.roles == q.role) | t.roles.like(f"{q.role},%") | t.roles.like(f"%,{q.role}")
                              | t.roles.like(f"%,{q.role},%"))
        return stmt

    async def iter_search(self, q: AuditQuery) -> AsyncIterator[dict[str, Any]]:
        """Like :meth:`search` but yields rows one by one."""
        t = audit_records.c
        stmt = self._filtered(q).order_by(t.ts_ms.desc(), t.seq.desc()).limit(q.limit).offset(q.offset)
        async with self.engine.connect() as conn:
            result = await conn.stream(stmt)
            async for row in result.mappings():
                yield dict(row)

    async def iter_chain(self, q: AuditQuery) -> AsyncIterator[dict[str, Any]]:
        """Every record matching ``q`` (its limit ignored), in chain order (oldest first)."""
        stmt = self._filtered(q).order_by(audit_records.c.seq)
        async with self.engine.connect() as conn:
            result = await conn.stream(stmt)
            async for row in result.mappings():
                yield dict(row)

    async def record(self, decision_id: str) -> dict[str, Any] | None:
        """The record of one decision (by the id clients are given), or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(audit_records).where(audit_records.c.decision_id == decision_id)
                                      )).mappings().first()
        return dict(row) if row else None

    async def checkpoints_after(self, seq: int) -> list[dict[str, Any]]:
        """The signed checkpoints with a sequence number above ``seq``, oldest first
        (``seq, hash, at_ms, key_id, signature``)."""
        cp = audit_checkpoints.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(audit_checkpoints).where(cp.seq > seq).order_by(cp.seq))).mappings()
            return [dict(row) for row in rows]

    async def checkpoint_at(self, seq: int) -> dict[str, Any] | None:
        """The signed checkpoint of record ``seq`` (``seq, hash, at_ms, key_id, signature``), or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(audit_checkpoints).where(audit_checkpoints.c.seq == seq))
                   ).mappings().first()
        return dict(row) if row else None

    async def latest_checkpoint(self) -> dict[str, Any] | None:
        """The newest signed checkpoint (``seq, hash, at_ms, key_id, signature``), or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq.desc())
                                      .limit(1))).mappings().first()
        return dict(row) if row else None

    async def first_seq_since(self, since: dt.datetime) -> int | None:
        """The sequence number of the first record at or after ``since`` (UTC)."""
        async with self.engine.connect() as conn:
            first = (await conn.execute(select(func.min(audit_records.c.seq))
                                        .where(audit_records.c.ts_ms >= _ms(since)))).scalar()
            return int(first) if first is not None else None

    # -- retention ----------------------------------------------------------------------
    async def archive_candidate(self, cutoff_ms: int) -> tuple[int, dict[str, Any]] | None:
        """The oldest segment that may be archived: from the first unarchived record to the
        newest signed checkpoint whose records all predate ``cutoff_ms`` (UTC epoch ms).
        The newest record is never part of it.

        Returns:
            ``(first_seq, checkpoint)`` (checkpoint: ``seq, hash, at_ms, key_id, signature``) or None.
        """
        t, cp = audit_records.c, audit_checkpoints.c
        async with self.engine.connect() as conn:
            first, newest = (await conn.execute(select(func.min(t.seq), func.max(t.seq)))).one()
            if first is None:
                return None
            boundary = (await conn.execute(select(func.min(t.seq)).where(t.ts_ms >= cutoff_ms))).scalar()
            # the newest record always stays: the chain (and SQLite's rowids) continue from it
            stmt = select(audit_checkpoints).where(cp.seq >= first, cp.seq < min(newest, boundary or newest))
            checkpoint = (await conn.execute(stmt.order_by(cp.seq.desc()).limit(1))).mappings().first()
        return (int(first), dict(checkpoint)) if checkpoint else None

    async def iter_range(self, first_seq: int, last_seq: int) -> AsyncIterator[dict[str, Any]]:
        """Every record with ``first_seq <= seq <= last_seq``, in chain order."""
        t = audit_records.c
        stmt = select(audit_records).where(t.seq >= first_seq, t.seq <= last_seq).order_by(t.seq)
        async with self.engine.connect() as conn:
            result = await conn.stream(stmt)
            async for row in result.mappings():
                yield dict(row)

    async def remove_archived(self, private_key: Any, marker: ArchiveMarker) -> None:
        """Record ``marker``, signed with ``private_key``, and delete the archived records, in one transaction.

        Raises:
            ArchiveConflict: the records in range are not exactly the archived ones (count or
                edge hashes differ), or the segment does not follow the previous archive.
        """
        t = audit_records.c
        first_seq, last_seq, first_prev_hash, last_hash = (marker.first_seq, marker.last_seq, marker.first_prev_hash,
                                                           marker.last_hash)
        records, file, file_sha256, at_ms = marker.records, marker.file, marker.file_sha256, marker.at_ms
        async with self._append_lock, self.engine.begin() as conn:
            await self._lock_chain(conn)
            last = (await conn.execute(select(audit_archives).order_by(audit_archives.c.first_seq.desc())
                                       .limit(1))).mappings().first()
            if last is not None and (last["last_seq"] >= first_seq or last["last_hash"] != first_prev_hash):
                raise ArchiveConflict(f"segment {first_seq}-{last_seq} does not follow the archive ending at "
                                      f"{last['last_seq']}")
            stored = (await conn.execute(select(func.count()).where(t.seq >= first_seq, t.seq <= last_seq))).scalar()
            edge = (await conn.execute(select(t.hash).where(t.seq == last_seq))).scalar()
            if stored != records or edge != last_hash:
                raise ArchiveConflict(f"segment {first_seq}-{last_seq} changed while it was archived")
            await conn.execute(insert(audit_archives), {
                "first_seq": first_seq, "last_seq": last_seq, "first_prev_hash": first_prev_hash,
                "last_hash": last_hash, "records": records, "file": file, "file_sha256": file_sha256, "at_ms": at_ms,
                "key_id": key_id(private_key.public_key()),
                "signature": sign_message(private_key, archive_message(first_seq, last_seq, first_prev_hash,
                                                                       last_hash, file_sha256, at_ms))})
            await conn.execute(delete(audit_records).where(t.seq >= first_seq, t.seq <= last_seq))

    async def latest_archive(self) -> dict[str, Any] | None:
        """The newest archive marker, or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(audit_archives).order_by(audit_archives.c.first_seq.desc())
                                      .limit(1))).mappings().first()
        return dict(row) if row else None

    async def close(self) -> None:
        """Stop the hashing thread; release connections (only when this store created its engine)."""
        self._chain_thread.shutdown(wait=False)
        if self._owns_engine:
            await self.engine.dispose()


def _archive_problems(archives: list[dict[str, Any]], public_key: Any, archive_dir: Path | None) -> list[Problem]:
    """Check archive markers: signed, joined end to end from the genesis, files intact (when a folder is given)."""
    import hashlib

    problems: list[Problem] = []
    prev_hash, next_seq = GENESIS, None
    for a in archives:
        message = archive_message(a["first_seq"], a["last_seq"], a["first_prev_hash"], a["last_hash"],
                                  a["file_sha256"], a["at_ms"])
        if public_key is None or not message_signature_valid(public_key, message, a["signature"]):
            problems.append(Problem("bad_archive", a["first_seq"], "", "archive marker signature is not valid"))
        if a["first_prev_hash"] != prev_hash or (next_seq is not None and a["first_seq"] != next_seq):
            problems.append(Problem("bad_archive", a["first_seq"], "",
                                    "this archived segment does not join the one before it"))
        prev_hash, next_seq = a["last_hash"], a["last_seq"] + 1
        if archive_dir is not None:
            path = archive_dir / a["file"]
            if not path.is_file():
                problems.append(Problem("archive_missing", a["first_seq"], "", f"archive file {path} is missing"))
            else:
                digest = hashlib.sha256()
                with path.open("rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(chunk)
                if digest.hexdigest() != a["file_sha256"]:
                    problems.append(Problem("archive_altered", a["first_seq"], "",
                                            f"archive file {path} differs from what was signed"))
    return problems
