"""Revocation: refuse access tokens issued before a person's access was cut.

Keycloak does not revoke access tokens it already issued, and the gateway caches
verified tokens. A revocation record per user (a not-before time, in whole seconds
since the epoch, UTC) closes that gap: a token whose ``iat`` is earlier is refused
with ``token_revoked``. Records live in the shared store, so every proxy process
sees them; each process refreshes its in-memory copy every ``refresh_seconds``
(the documented staleness, 0.5 s by default). Records older than the longest token
lifetime can no longer match a valid token and are pruned.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from sqlalchemy import BigInteger, Column, Index, String, Table, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authorizer.db import metadata

log = logging.getLogger(__name__)

revocations = Table(
    "revocations",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("not_before_s", BigInteger, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("revoked_by", String(255), nullable=False, default=""),
    Column("updated_ms", BigInteger, nullable=False),
    Index("revocations_updated", "updated_ms"),
)


class RevocationStore:
    """Writes and reads revocation records.

    Args:
        engine: the shared store's engine.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def revoke(self, user_id: str, reason: str, revoked_by: str, at: float | None = None) -> int:
        """Refuse every token of ``user_id`` issued before now (or ``at``, seconds since the epoch).

        The not-before time is rounded up to the next whole second, because ``iat`` has
        one-second resolution: a token issued in the same second as the revocation is refused too.

        Returns:
            The not-before time stored (seconds since the epoch, UTC).
        """
        not_before = math.ceil(at if at is not None else time.time())
        now_ms = int(time.time() * 1000)
        async with self.engine.begin() as conn:
            current = (await conn.execute(select(revocations.c.not_before_s)
                                          .where(revocations.c.user_id == user_id))).scalar_one_or_none()
            if current is None:
                await conn.execute(revocations.insert().values(user_id=user_id, not_before_s=not_before,
                                                               reason=reason, revoked_by=revoked_by,
                                                               updated_ms=now_ms))
            elif current < not_before:
                await conn.execute(revocations.update().where(revocations.c.user_id == user_id).values(
                    not_before_s=not_before, reason=reason, revoked_by=revoked_by, updated_ms=now_ms))
            else:
                not_before = current
        return not_before

    async def changed_since(self, updated_ms: int) -> list[tuple[str, int, int]]:
        """``(user_id, not_before_s, updated_ms)`` of records changed after ``updated_ms``."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(revocations.c.user_id, revocations.c.not_before_s,
                                             revocations.c.updated_ms).where(revocations.c.updated_ms > updated_ms))
            return [(r.user_id, int(r.not_before_s), int(r.updated_ms)) for r in rows]

    async def prune(self, older_than_s: int) -> int:
        """Delete records whose not-before time is more than ``older_than_s`` seconds ago."""
        cutoff = int(time.time()) - older_than_s
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(revocations).where(revocations.c.not_before_s < cutoff))
        return result.rowcount or 0


class RevocationCache:
    """The proxy's copy of the revocation records, refreshed in the background.

    Args:
        store: the records.
        refresh_seconds: how often to look for new records (the staleness bound).
        retention_seconds: how long a record is kept (at least the longest access-token
            lifetime plus the verification leeway).
    """

    def __init__(self, store: RevocationStore, refresh_seconds: float = 0.5, retention_seconds: int = 900) -> None:
        self._store = store
        self._refresh = refresh_seconds
        self._retention = retention_seconds
        self._not_before: dict[str, int] = {}
        self._seen_ms = 0
        self._last_ok = time.monotonic()

    def age_seconds(self) -> float:
        """Seconds since the records were last refreshed successfully (monotonic clock)."""
        return time.monotonic() - self._last_ok

    def fresh(self) -> bool:
        """False when the records could not be refreshed for a while (max(5 s, 10 refreshes)):
        another process's revocation might be missed, so the proxy refuses (fail closed)."""
        return time.monotonic() - self._last_ok <= max(5.0, 10 * self._refresh)

    def is_revoked(self, user_id: str, issued_at: int | None) -> bool:
        """True when the token of ``user_id`` issued at ``issued_at`` (seconds) predates a revocation.
        A token without ``iat`` of a revoked person is refused."""
        not_before = self._not_before.get(user_id)
        if not_before is None:
            return False
        return issued_at is None or issued_at < not_before

    async def refresh(self) -> None:
        """Load records changed since the last refresh."""
        for user_id, not_before, updated_ms in await self._store.changed_since(self._seen_ms):
            self._not_before[user_id] = max(not_before, self._not_before.get(user_id, 0))
            self._seen_ms = max(self._seen_ms, updated_ms)
        self._last_ok = time.monotonic()

    def note(self, user_id: str, not_before: int) -> None:
        """Apply a revocation made by this process at once (others see it on their next refresh)."""
        self._not_before[user_id] = max(not_before, self._not_before.get(user_id, 0))

    async def run_forever(self) -> None:
        """Refresh every ``refresh_seconds`` and prune old records every minute, until cancelled."""
        last_prune = 0.0
        while True:
            try:
                await self.refresh()
                if time.monotonic() - last_prune > 60:
                    await self._store.prune(self._retention)
                    cutoff = int(time.time()) - self._retention
                    self._not_before = {u: nb for u, nb in self._not_before.items() if nb >= cutoff}
                    last_prune = time.monotonic()
            except Exception:
                log.exception("revocation refresh failed")
            await asyncio.sleep(self._refresh)
