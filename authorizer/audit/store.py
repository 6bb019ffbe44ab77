"""The audit trail store: SQLAlchemy Core over SQLite (default) or PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, AsyncIterator

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table, Text, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authorizer.audit.record import AuditRecord
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
    Index("audit_ts", "ts_ms"),
    Index("audit_user_ts", "username", "ts_ms"),
    Index("audit_module_verb_ts", "module", "verb", "ts_ms"),
    Index("audit_resource", "resource_id"),
    Index("audit_approval", "approval_id"),
)


@dataclass(frozen=True)
class AuditQuery:
    """Search filters; None means "any". Times are UTC; results are newest first.

    Attributes:
        since, until: time range (``until`` exclusive).
        user: username or user id.
        module, verb, resource_id, warehouse, channel, decision, client_ip, approval_id: exact matches.
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
    limit: int = 100
    offset: int = 0


def _ms(ts: dt.datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.timezone.utc)
    return int(ts.timestamp() * 1000)


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

    async def create_schema(self) -> None:
        """Create missing tables, indexes and columns (idempotent)."""
        await create_schema(self.engine)

    async def insert_many(self, records: list[AuditRecord]) -> None:
        """Insert records in one transaction (all or nothing).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database refused or is unreachable.
        """
        if not records:
            return
        async with self.engine.begin() as conn:
            await conn.execute(insert(audit_records), [r.as_row() for r in records])

    async def search(self, q: AuditQuery) -> list[dict[str, Any]]:
        """Records matching ``q``, newest first, as column dicts."""
        return [row async for row in self.iter_search(q)]

    async def iter_search(self, q: AuditQuery) -> AsyncIterator[dict[str, Any]]:
        """Like :meth:`search` but yields rows one by one."""
        t = audit_records.c
        stmt = select(audit_records)
        if q.since is not None:
            stmt = stmt.where(t.ts_ms >= _ms(q.since))
        if q.until is not None:
            stmt = stmt.where(t.ts_ms < _ms(q.until))
        if q.user:
            stmt = stmt.where((t.username == q.user) | (t.user_id == q.user))
        for name in ("module", "verb", "resource_id", "warehouse", "channel", "decision", "client_ip", "approval_id"):
            value = getattr(q, name)
            if value:
                stmt = stmt.where(getattr(t, name) == value)
        stmt = stmt.order_by(t.ts_ms.desc(), t.seq.desc()).limit(q.limit).offset(q.offset)
        async with self.engine.connect() as conn:
            result = await conn.stream(stmt)
            async for row in result.mappings():
                yield dict(row)

    async def close(self) -> None:
        """Release connections (only when this store created its engine)."""
        if self._owns_engine:
            await self.engine.dispose()
