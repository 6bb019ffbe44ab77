"""Time-boxed reveals: one masked field of one record shown in plaintext to one person for a
few minutes, given with a reason and audited.

A reveal is made through ``POST /_gateway/reveals`` (:mod:`proxy.management.reveals`): the
policy must allow the person to view the record and to ``reveal`` on its module
(``orders:reveal``), and the field must be one the person sees masked. Until it lapses, the
person's answers of that record (any route of its module naming the same record) carry the
field unmasked; the audit record of each answer names the reveal. Reveals live in the
gateway's store (every proxy process sees them within :attr:`RevealCache.refresh_seconds`)
and are never deleted: they are evidence of who read what, and why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authorizer.db import metadata

log = logging.getLogger(__name__)

field_reveals = Table(
    "field_reveals", metadata,
    Column("reveal_id", String(32), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("username", String(128), nullable=False),
    Column("module", String(64), nullable=False),
    Column("resource_id", String(512), nullable=False),
    Column("place", Text, nullable=False, server_default=""),
    Column("field", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    Column("decision_id", String(32), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("until_ms", BigInteger, nullable=False),
    Index("ix_field_reveals_until", "until_ms"),
    Index("ix_field_reveals_user", "user_id", "created_ms"),
)


@dataclass(frozen=True)
class RevealAsk:
    """What a reveal is made of.

    Attributes:
        user_id, username: who may see the field.
        module, resource_id: the record (``orders``, ``SO2026...``).
        field: the masked field path shown plainly (as in the ``mask`` obligation).
        reason: why, as the person gave it.
        decision_id: the audit record of the reveal.
        place: where the record lies (:func:`place_of` its scope attributes: with one WMS
            tenant per warehouse, HF's ``SO001`` is not SH's).
    """

    user_id: str
    username: str
    module: str
    resource_id: str
    field: str
    reason: str
    decision_id: str
    place: str = ""


@dataclass(frozen=True)
class Reveal(RevealAsk):
    """One reveal as stored: the ask, with its id and time box.

    Attributes:
        reveal_id: 32 hex digits.
        created_ms, until_ms: when it was made and when it lapses (ms since the epoch, UTC).
    """

    reveal_id: str = ""
    created_ms: int = 0
    until_ms: int = 0

    def document(self) -> dict[str, object]:
        """The JSON clients see (times as ms and ISO 8601 UTC)."""
        return {"reveal_id": self.reveal_id, "username": self.username, "module": self.module,
                "resource_id": self.resource_id, "field": self.field, "reason": self.reason,
                "decision_id": self.decision_id, "created_ms": self.created_ms, "until_ms": self.until_ms,
                "until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.until_ms / 1000))}


def place_of(attributes: dict[str, list[str]]) -> str:
    """A record's place as text: its scope attributes, sorted (``{"warehouse": ["HF"]}``)."""
    return json.dumps({dim: sorted(values) for dim, values in attributes.items() if values}, sort_keys=True)


class RevealStore:
    """Reveals in the gateway's database (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, ask: RevealAsk, seconds: int) -> Reveal:
        """Store a reveal lasting ``seconds`` from now and return it.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store failed (nothing is revealed).
        """
        now = int(time.time() * 1000)
        reveal = Reveal(**dataclasses.asdict(ask), reveal_id=uuid.uuid4().hex, created_ms=now,
                        until_ms=now + seconds * 1000)
        async with self.engine.begin() as conn:
            await conn.execute(field_reveals.insert().values(**dataclasses.asdict(reveal)))
        return reveal

    async def live(self, at_ms: int) -> list[Reveal]:
        """Every reveal that has not lapsed at ``at_ms`` (ms since the epoch)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(field_reveals).where(field_reveals.c.until_ms > at_ms))).mappings().all()
        return [Reveal(**dict(row)) for row in rows]


class RevealCache:
    """The proxy's copy of the live reveals, refreshed in the background (a lookup per answer
    is a dictionary read, not a query).

    Args:
        store: the reveals.
        refresh_seconds: how often to reload them (a reveal made by another process shows
            after at most this long; one made by this process at once, :meth:`note`).
    """

    def __init__(self, store: RevealStore, refresh_seconds: float = 1.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._by_record: dict[tuple[str, str, str], list[Reveal]] = {}
        self._noted: dict[str, Reveal] = {}

    def fields(self, user_id: str, module: str, resource_id: str, attributes: dict[str, list[str]],
               at_ms: int) -> list[Reveal]:
        """The reveals ``user_id`` holds on this record (``attributes``: its scope attributes, its
        place) that have not lapsed at ``at_ms``. Called on every masked single-record answer: the
        place is worked out only when the person holds a reveal on that record id."""
        candidates = self._by_record.get((user_id, module, resource_id))
        if not candidates:
            return []
        place = place_of(attributes)
        return [r for r in candidates if r.until_ms > at_ms and r.place == place]

    def note(self, reveal: Reveal) -> None:
        """Apply a reveal made by this process at once (a reload running meanwhile keeps it)."""
        self._noted[reveal.reveal_id] = reveal
        self._by_record.setdefault((reveal.user_id, reveal.module, reveal.resource_id), []).append(reveal)

    def _load(self, reveals: Iterable[Reveal]) -> None:
        by_record: dict[tuple[str, str, str], list[Reveal]] = {}
        for reveal in reveals:
            by_record.setdefault((reveal.user_id, reveal.module, reveal.resource_id), []).append(reveal)
        self._by_record = by_record

    async def refresh(self) -> None:
        """Reload the live reveals (lapsed ones drop out).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store failed (the last copy stays; lapsed
                reveals still stop showing, :meth:`fields` checks the time).
        """
        now = int(time.time() * 1000)
        loaded = await self.store.live(now)
        seen = {r.reveal_id for r in loaded}
        # noted by this process after the query started: kept until the store's copy shows them
        self._noted = {i: r for i, r in self._noted.items() if i not in seen and r.until_ms > now}
        self._load([*loaded, *self._noted.values()])

    async def run_forever(self) -> None:
        """Refresh every ``refresh_seconds`` until cancelled."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("reveal refresh failed")
            await asyncio.sleep(self.refresh_seconds)
