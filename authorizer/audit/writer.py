"""Writes audit records off the request path, in batches, without dropping any."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from authorizer.audit.record import AuditRecord
from authorizer.audit.spool import Spool, SpoolFull
from authorizer.audit.store import AuditStore
from authorizer.audit.witness import WitnessPublisher

log = logging.getLogger(__name__)


class AuditBackpressure(Exception):
    """No more records can be kept safely (the spool is full or unwritable and the memory
    queue is at its bound); the proxy refuses new requests (fail closed)."""


class AuditUnavailable(Exception):
    """A record that must be durable before the answer could be neither committed to the
    database nor written to the spool. It stays queued (it is not lost unless the process
    dies); the caller must not answer as if it were recorded."""



@dataclass(frozen=True)
class WriterSettings:
    """How the audit writer batches and bounds its queue.

    Attributes:
        interval: seconds between flushes (the upper bound on a record's wait when the DB is healthy).
        batch_size: records per insert transaction.
        max_pending: memory queue bound (records) before refusing.
        checkpoint_every_records, checkpoint_every_seconds: a checkpoint is signed after
            this many new records or this many seconds with new records, whichever first.
        max_backoff: seconds between retries while the database stays down.
    """

    interval: float = 0.2
    batch_size: int = 1000
    max_pending: int = 200_000
    checkpoint_every_records: int = 1000
    checkpoint_every_seconds: float = 60.0
    max_backoff: float = 2.0


class AuditWriter:
    """Queues records and writes them to the store every ``interval`` seconds or ``batch_size`` records.

    When the database fails, the queued records go to the spool (an fsync'd local file)
    and everything later is appended behind them; once the database answers again the
    spool is replayed in order, then the queue. Replays are idempotent (records already
    in the store, found by ``decision_id``, are skipped), so a write whose
    acknowledgement was lost is not doubled. When the spool is full or cannot be
    written, records stay in memory and :meth:`check_capacity` makes the proxy refuse
    new requests.

    Args:
        store: where records go.
        settings: batching, bounds and checkpoint cadence (:class:`WriterSettings`).
        spool: where records wait while the database is down (None: memory only, for tests and tools).
        signing_key: Ed25519 private key that signs checkpoints (None: no checkpoints).
        witness: copies each new checkpoint to the audit witness (None: no witness).
    """

    def __init__(self, store: AuditStore, settings: WriterSettings | None = None, spool: Spool | None = None,
                 signing_key: Any = None, witness: WitnessPublisher | None = None) -> None:
        settings = settings or WriterSettings()
        self._signing_key = signing_key
        self.witness = witness
        self._cp_records = settings.checkpoint_every_records
        self._cp_seconds = settings.checkpoint_every_seconds
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._store = store
        self._spool = spool
        self._interval = settings.interval
        self._batch_size = settings.batch_size
        self._max_pending = settings.max_pending
        self._max_backoff = settings.max_backoff
        self._queue: deque[AuditRecord] = deque()
        self._spool_refused = False  # the last move of the queue to the spool failed
        self._io = asyncio.Lock()  # one drain at a time keeps the chain in submission order
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.failures = 0

    @property
    def pending(self) -> int:
        """Records not yet committed to the store (in memory or in the spool)."""
        return len(self._queue) + (self._spool.pending if self._spool is not None else 0)

    @property
    def spool_bytes(self) -> int:
        """The spool file's size in bytes (0 without a spool)."""
        return self._spool.size if self._spool is not None else 0

    @property
    def spooled(self) -> int:
        """Records waiting in the spool file."""
        return self._spool.pending if self._spool is not None else 0

    def check_capacity(self) -> None:
        """Raise :class:`AuditBackpressure` when no more records can be kept safely."""
        if len(self._queue) >= self._max_pending:
            raise AuditBackpressure(f"{len(self._queue)} audit records are waiting in memory")
        if self._spool is not None and (self._spool.full or (self._spool_refused and self._queue)):
            raise AuditBackpressure(f"the audit spool {self._spool.path} is full or cannot be written")

    def submit(self, record: AuditRecord) -> None:
        """Queue ``record`` (never blocks). Records are accepted even past the bound so none is lost;
        the bound is enforced on new requests through :meth:`check_capacity`."""
        self._queue.append(record)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        """Start the background loop; it first replays whatever a previous run left in the spool."""
        if self._spool is not None and self._spool.pending:
            log.warning("%d audit records in the spool %s will be replayed", self._spool.pending, self._spool.path)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    async def _run(self) -> None:
        backoff = self._interval
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except TimeoutError:
                pass
            self._wake.clear()
            if await self.flush():
                backoff = self._interval
            else:
                backoff = min(backoff * 2, self._max_backoff)

    async def commit(self, record: AuditRecord) -> None:
        """Make ``record`` durable now, behind everything submitted before it, before the caller
        answers (high-risk operations: an answer the client saw must never lose its record,
        even if the process is killed right after). Durable means committed to the store or,
        while the database is down, fsync'd to the spool.

        Raises:
            AuditUnavailable: neither worked; the record stays queued (do not submit it again).
        """
        async with self._io:
            self._queue.append(record)
            await self._drain()
            if self._queue:  # the spool could not take the queue: ``record`` is only in memory
                raise AuditUnavailable("the audit record could not be made durable")
        await self._maybe_checkpoint()

    async def flush(self) -> bool:
        """Write the spool, then every queued record, to the store now.

        Returns:
            True when everything reached the store, False when the database failed
            (records are then in the spool, or kept in memory when the spool cannot take them).
        """
        async with self._io:
            ok = await self._drain()
        if ok:
            await self._maybe_checkpoint()
        return ok

    async def _drain(self) -> bool:
        """Replay the spool, then write the queue. Must hold ``_io``."""
        spool = self._spool
        while spool is not None and spool.pending:
            try:
                batch = spool.read_batch(self._batch_size)
            except (OSError, ValueError):
                log.exception("the audit spool %s cannot be read; records stay in it", spool.path)
                self._to_spool()
                return False
            try:
                await self._store.insert_many(batch.records)
            except Exception:  # noqa: BLE001 - any DB failure: keep the spool, queue behind it
                self.failures += 1
                log.warning("audit database unavailable; %d records spooled", spool.pending)
                self._to_spool()
                return False
            spool.consume(batch)
            self._since_checkpoint += len(batch.records)
            if not spool.pending:
                log.warning("audit spool replayed into the database")
        while self._queue:
            records = [self._queue[i] for i in range(min(self._batch_size, len(self._queue)))]
            try:
                await self._store.insert_many(records)
            except Exception:
                self.failures += 1
                log.exception("audit write failed; %d records go to the spool", len(self._queue))
                self._to_spool()
                return False
            for _ in records:
                self._queue.popleft()
            self._since_checkpoint += len(records)
        return True

    def _to_spool(self, force: bool = False) -> None:
        """Move the memory queue to the spool (in order); keep it in memory if that fails."""
        if self._spool is None or not self._queue:
            return
        try:
            self._spool.append(list(self._queue), force=force)
        except (SpoolFull, OSError) as exc:
            self._spool_refused = True
            log.error("audit spool cannot take %d records (%s); they stay in memory", len(self._queue), exc)
            return
        self._spool_refused = False
        self._queue.clear()

    async def _maybe_checkpoint(self, force: bool = False) -> None:
        if self._signing_key is None or self._since_checkpoint == 0:
            return
        due = self._since_checkpoint >= self._cp_records or time.monotonic() - self._last_checkpoint >= self._cp_seconds
        if not (due or force):
            return
        try:
            await self._store.write_checkpoint(self._signing_key, int(time.time() * 1000))
        except Exception:
            log.exception("audit checkpoint failed; will retry")
            return
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        if self.witness is not None:
            self.witness.notify()  # its own task copies it: a slow share never holds up the writer

    async def close(self, attempts: int = 10) -> None:
        """Stop the loop and flush the remainder, retrying a few times; what the
        database still refuses goes to the spool (past its bound if need be) for the next start.

        Raises:
            RuntimeError: records could be neither written nor spooled.
        """
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        for attempt in range(attempts):
            if await self.flush():
                await self._maybe_checkpoint(force=True)
                if self.witness is not None:
                    await self.witness.drain(5.0)
                return
            if self._spool is not None and not self._queue:
                break  # everything is safe in the spool; the next start replays it
            if attempt + 1 < attempts:
                await asyncio.sleep(0.5)
        async with self._io:
            self._to_spool(force=True)
        if self._queue:
            raise RuntimeError(f"{len(self._queue)} audit records could be neither written nor spooled at shutdown")
        if self._spool is not None and self._spool.pending:
            log.error("database unavailable at shutdown: %d audit records wait in %s", self._spool.pending,
                      self._spool.path)
