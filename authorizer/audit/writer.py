"""Writes audit records off the request path, in batches, without dropping any."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from authorizer.audit.record import AuditRecord
from authorizer.audit.store import AuditStore

log = logging.getLogger(__name__)


class AuditBackpressure(Exception):
    """Too many records are waiting for the database; the proxy refuses new requests (fail closed)."""


class AuditWriter:
    """Queues records and flushes them to the store every ``interval`` seconds or ``batch_size`` records.

    A failed flush keeps the batch at the head of the queue and retries with
    backoff; :meth:`close` flushes whatever is left. When more than
    ``max_pending`` records wait, :meth:`submit` raises :class:`AuditBackpressure`.

    Args:
        store: where records go.
        interval: seconds between flushes (the upper bound on a record's wait when the DB is healthy).
        batch_size: records per insert transaction.
        max_pending: queue bound before refusing.
        spool_path: JSON-lines file that receives records the database could not take
            at shutdown; they are replayed into the store by :meth:`start`.
        signing_key: Ed25519 private key that signs checkpoints (None: no checkpoints).
        checkpoint_every_records, checkpoint_every_seconds: a checkpoint is signed after
            this many new records or this many seconds with new records, whichever first.
    """

    def __init__(self, store: AuditStore, interval: float = 0.2, batch_size: int = 1000,
                 max_pending: int = 200_000, spool_path: Path | None = None, signing_key: Any = None,
                 checkpoint_every_records: int = 1000, checkpoint_every_seconds: float = 60.0) -> None:
        self._signing_key = signing_key
        self._cp_records = checkpoint_every_records
        self._cp_seconds = checkpoint_every_seconds
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._store = store
        self._spool = spool_path
        self._interval = interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._queue: deque[AuditRecord] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.failures = 0

    @property
    def pending(self) -> int:
        """Records not yet committed."""
        return len(self._queue)

    def check_capacity(self) -> None:
        """Raise :class:`AuditBackpressure` when no more records can be accepted."""
        if len(self._queue) >= self._max_pending:
            raise AuditBackpressure(f"{len(self._queue)} audit records are waiting for the database")

    def submit(self, record: AuditRecord) -> None:
        """Queue ``record`` (never blocks). Records are accepted even past the bound so none is lost;
        the bound is enforced on new requests through :meth:`check_capacity`."""
        self._queue.append(record)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        """Replay spooled records into the store (the spool file is removed only once
        they are committed), then start the background flush loop."""
        if self._spool is not None and self._spool.exists():
            with self._spool.open(encoding="utf-8") as fh:
                spooled = [AuditRecord(**json.loads(line)) for line in fh if line.strip()]
            try:
                await self._store.insert_many(spooled)
            except Exception:  # noqa: BLE001 - keep the spool for the next start
                log.exception("could not replay %d spooled audit records; kept in %s", len(spooled), self._spool)
            else:
                self._spool.unlink()
                log.warning("replayed %d spooled audit records", len(spooled))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    async def _run(self) -> None:
        backoff = self._interval
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if await self.flush():
                backoff = self._interval
            else:
                backoff = min(backoff * 2, 5.0)

    async def commit(self, record: AuditRecord) -> None:
        """Write ``record`` now, before the caller answers (high-risk operations: an answer the
        client saw must never lose its record, even if the process is killed right after).

        Raises:
            Exception: the database refused; the caller must not claim success.
        """
        await self._store.insert_many([record])
        self._since_checkpoint += 1

    async def flush(self) -> bool:
        """Write every queued record now.

        Returns:
            True when the queue was emptied, False when the database failed (records kept).
        """
        while self._queue:
            batch = [self._queue[i] for i in range(min(self._batch_size, len(self._queue)))]
            try:
                await self._store.insert_many(batch)
            except Exception:  # noqa: BLE001 - any DB failure keeps the records for retry
                self.failures += 1
                log.exception("audit flush failed; %d records kept for retry", len(self._queue))
                return False
            for _ in batch:
                self._queue.popleft()
            self._since_checkpoint += len(batch)
        await self._maybe_checkpoint()
        return True

    async def _maybe_checkpoint(self, force: bool = False) -> None:
        if self._signing_key is None or self._since_checkpoint == 0:
            return
        due = self._since_checkpoint >= self._cp_records or time.monotonic() - self._last_checkpoint >= self._cp_seconds
        if not (due or force):
            return
        try:
            await self._store.write_checkpoint(self._signing_key, int(time.time() * 1000))
        except Exception:  # noqa: BLE001 - a missed checkpoint is retried with the next flush
            log.exception("audit checkpoint failed; will retry")
            return
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()

    async def close(self, attempts: int = 10) -> None:
        """Stop the loop and flush the remainder, retrying a few times; what the
        database still refuses goes to the spool file for the next start.

        Raises:
            RuntimeError: records could be neither written nor spooled.
        """
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        for _ in range(attempts):
            if await self.flush():
                await self._maybe_checkpoint(force=True)
                return
            await asyncio.sleep(0.5)
        if self._spool is None:
            raise RuntimeError(f"{len(self._queue)} audit records could not be written at shutdown")
        with self._spool.open("a", encoding="utf-8") as fh:
            for record in self._queue:
                fh.write(json.dumps(record.as_row(), ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.error("database unavailable at shutdown: %d audit records spooled to %s", len(self._queue), self._spool)
        self._queue.clear()
