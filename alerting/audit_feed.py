"""The gateway's decisions, read from its audit trail (the same store the proxies write).

Records are read in chain order (``seq``) from a persisted checkpoint, so a decision
made while the alerting service was down is still seen, and each exactly once. Only
what the detectors need is read: high-risk requests, refusals and changes (reads that
were allowed are skipped in the query).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from alerting.engine import Engine, ingest_or_skip
from alerting.events import from_audit
from alerting.store import AlertStore, now_ms
from authorizer.audit.store import audit_records

log = logging.getLogger(__name__)

SOURCE = "gateway-audit"
BATCH = 500


class AuditFeed:
    """Tails ``audit_records`` into the engine.

    Args:
        engine: where events go.
        store: where the checkpoint (last ``seq`` read) lives.
        audit_engine: the gateway audit store (read only).
        interval_seconds: time between polls, seconds.
        first_lookback_ms: with no checkpoint, start at records this recent, ms.
    """

    def __init__(self, engine: Engine, store: AlertStore, audit_engine: AsyncEngine, interval_seconds: float = 1.0,
                 first_lookback_ms: int = 3600 * 1000) -> None:
        self._engine = engine
        self._store = store
        self._audit = audit_engine
        self._interval = interval_seconds
        self._first_lookback_ms = first_lookback_ms

    async def _start_seq(self) -> int:
        saved = await self._store.checkpoint(SOURCE)
        if saved is not None:
            return int(saved)
        async with self._audit.connect() as conn:
            first = (await conn.execute(select(func.min(audit_records.c.seq))
                                        .where(audit_records.c.ts_ms >= now_ms() - self._first_lookback_ms))).scalar()
            last = (await conn.execute(select(func.max(audit_records.c.seq)))).scalar()
        return (first - 1) if first is not None else (last or 0)

    async def poll(self) -> int:
        """Read what was added since the checkpoint; returns how many records were taken in.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: either store failed (the checkpoint stays).
        """
        seq = await self._start_seq()
        async with self._audit.connect() as conn:
            newest = (await conn.execute(select(func.max(audit_records.c.seq)))).scalar() or 0
        if newest < seq:  # the trail was rebuilt or restored: read it again (decisions seen are skipped)
            log.warning("the audit trail ends at seq %d, before the checkpoint %d: reading it from the start",
                        newest, seq)
            seq = 0
        taken = 0
        interesting = or_(audit_records.c.decision == "deny", audit_records.c.verb != "view",
                          audit_records.c.approval_id.is_not(None))
        while True:
            async with self._audit.connect() as conn:
                # the end is read first: records appended meanwhile wait for the next poll
                last = (await conn.execute(select(func.max(audit_records.c.seq)))).scalar() or seq
                rows = (await conn.execute(
                    select(audit_records).where(and_(audit_records.c.seq > seq, audit_records.c.seq <= last,
                                                     interesting))
                    .order_by(audit_records.c.seq).limit(BATCH))).mappings().all()
            for row in rows:
                if await ingest_or_skip(self._engine, from_audit(row), "audit"):
                    taken += 1
                seq = row["seq"]
            if len(rows) < BATCH:
                await self._store.save_checkpoint(SOURCE, str(max(seq, last)))
                return taken
            await self._store.save_checkpoint(SOURCE, str(seq))

    async def run_forever(self) -> None:
        """Poll until cancelled; a missing or unreachable audit store is retried."""
        while True:
            try:
                await self.poll()
            except SQLAlchemyError as exc:
                log.warning("reading the gateway audit trail failed (will retry): %s", str(exc).splitlines()[0])
            except Exception:
                log.exception("reading the gateway audit trail failed (will retry)")
            await asyncio.sleep(self._interval)
