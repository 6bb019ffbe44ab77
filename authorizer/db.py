"""The gateway's store: one SQLAlchemy async engine (SQLite by default, PostgreSQL at scale)
shared by the audit trail and the approvals, and the schema they share."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import MetaData, event, inspect, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

metadata = MetaData()
_SCHEMA_LOCK = 4_242_000  # PostgreSQL advisory lock id serializing schema creation


def make_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://...``).

    SQLite connections use WAL journaling, ``synchronous=NORMAL`` and a 5 s busy timeout.
    """
    engine = create_async_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.execute("PRAGMA cache_size=-32768")  # 32 MiB: the trail's indexes stay in memory longer
            cur.close()
    return engine


async def create_schema(engine: AsyncEngine, schema: MetaData = metadata) -> None:
    """Create missing tables and indexes, and add columns that later versions introduced
    to tables an older version created (additive changes only; nothing is dropped).

    Args:
        engine: the store.
        schema: which tables (default: the gateway's; the alerting service has its own).
    """
    for attempt in range(5):
        try:
            async with engine.begin() as conn:
                if conn.dialect.name == "postgresql":  # several processes start at once (--workers)
                    await conn.execute(text(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})"))
                await conn.run_sync(schema.create_all)
                await conn.run_sync(_add_missing_columns, schema)
            return
        except (OperationalError, ProgrammingError, IntegrityError):
            if attempt == 4:  # not another process's creation racing ours: a real failure
                raise
            await asyncio.sleep(0.2 * (attempt + 1))


def _add_missing_columns(sync_conn: Any, schema: MetaData) -> None:
    inspector = inspect(sync_conn)
    for table in schema.sorted_tables:
        existing = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in existing and column.nullable:
                kind = column.type.compile(dialect=sync_conn.dialect)
                sync_conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
