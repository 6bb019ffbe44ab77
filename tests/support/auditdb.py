"""The audit store the test stack writes to, whichever backend runs (SQLite or PostgreSQL).

``WMSGATE_TEST_DB=postgresql`` makes the session start a throwaway PostgreSQL cluster
(the Debian package's binaries) and point the proxy at it; the default is SQLite.
The helpers here read, tamper with and copy the store through SQLAlchemy, so the
same tests run on both.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import insert, select, text

from authorizer.audit.store import audit_archives, audit_checkpoints, audit_records
from authorizer.db import create_schema, make_engine
from wmsgate.pgcluster import LocalPostgres

_COPIES = itertools.count(1)
T = TypeVar("T")


def backend() -> str:
    """``sqlite`` or ``postgresql`` (from ``WMSGATE_TEST_DB``)."""
    value = os.environ.get("WMSGATE_TEST_DB", "sqlite").lower()
    if value not in ("sqlite", "postgresql"):
        raise ValueError(f"WMSGATE_TEST_DB must be sqlite or postgresql, not {value!r}")
    return value


@dataclass
class AuditDb:
    """Where the stack's audit store lives.

    Attributes:
        url: the proxy's audit URL (SQLAlchemy async).
        scratch: folder for SQLite copies.
        pg: the PostgreSQL cluster when that backend runs.
    """

    url: str
    scratch: Path
    pg: LocalPostgres | None = None

    def sql(self, statement: str, params: dict[str, Any] | None = None, url: str | None = None) -> list[dict[str, Any]]:
        """Run one SQL statement (committed) on the store (or on ``url``) and return its rows."""
        return run_sql(url or self.url, statement, params)

    def snapshot(self) -> str:
        """A consistent copy of the live audit tables in a new database; returns its URL."""
        n = next(_COPIES)
        if self.pg is not None:
            target = self.pg.create_database(f"audit_copy_{n}")
        else:
            target = f"sqlite+aiosqlite:///{self.scratch / f'audit-copy-{n}.db'}"
        _run(_copy(self.url, target))
        return target


def run_sql(url: str, statement: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run one SQL statement (committed) on the database at ``url`` and return its rows as dicts."""
    return _run(_execute(url, statement, params or {}))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` that also works under Playwright's sync API (which keeps a loop running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _execute(url: str, statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return [dict(r) for r in result.mappings()] if result.returns_rows else []
    finally:
        await engine.dispose()


async def _copy(source_url: str, target_url: str) -> None:
    source, target = make_engine(source_url), make_engine(target_url)
    try:
        await create_schema(target)
        async with source.connect() as src, target.begin() as dst:
            # markers first, records last: every marker copied vouches for records that are copied too
            for table, key in ((audit_archives, audit_archives.c.first_seq),
                               (audit_checkpoints, audit_checkpoints.c.seq),
                               (audit_records, audit_records.c.seq)):
                rows = [dict(r) for r in (await src.execute(select(table).order_by(key))).mappings()]
                if rows:
                    await dst.execute(insert(table), rows)
            if target.dialect.name == "postgresql":  # rows came with their seq: move the counter past them
                await dst.execute(text("SELECT setval(pg_get_serial_sequence('audit_records', 'seq'), "
                                       "COALESCE((SELECT max(seq) FROM audit_records), 0) + 1, false)"))
    finally:
        await source.dispose()
        await target.dispose()
