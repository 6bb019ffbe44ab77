"""Access review campaigns: who holds what in a warehouse (or role), with when each part was
last used; reviewers keep or revoke each item; at the deadline what nobody reviewed is
revoked (or kept, as configured), revocations are carried out, and the result is signed.

A campaign is ``open`` until it is closed (by a reviewer, or by the sweeper at its
deadline), then ``closing`` while its revocations run, then ``closed`` with a signed
result. Every state change is a compare-and-set in the store, so two proxy processes
sweeping at once, or a reviewer deciding while the deadline passes, cannot close a
campaign twice or change a decision after the close.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Integer, String, Table, Text, and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from authorizer.db import metadata

OPEN, CLOSING, CLOSED = "open", "closing", "closed"
#: A close that has not shown a sign of life for this long (ms) is taken over by the sweeper.
STALE_MS = 120_000
KEEP, REVOKE = "keep", "revoke"
#: What happens at the deadline to items nobody decided on.
UNREVIEWED_CHOICES = (REVOKE, KEEP)

access_reviews = Table(
    "access_reviews",
    metadata,
    Column("review_id", String(32), primary_key=True),
    Column("title", Text, nullable=False),
    Column("warehouse", String(64), nullable=True),
    Column("role", String(64), nullable=True),
    Column("window_days", Integer, nullable=False),
    Column("deadline_ms", BigInteger, nullable=False),
    Column("unreviewed", String(8), nullable=False),
    Column("status", String(8), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("closed_by", String(255), nullable=True),
    Column("closed_ms", BigInteger, nullable=True),
    Column("claim", String(32), nullable=True),  # which close owns the campaign while it is closing
    Column("heartbeat_ms", BigInteger, nullable=True),  # that close's last sign of life
    Column("result", Text, nullable=True),
    Column("signature", Text, nullable=True),
    Column("key_id", String(32), nullable=True),
)

access_review_items = Table(
    "access_review_items",
    metadata,
    Column("review_id", String(32), primary_key=True),
    Column("item_id", Integer, primary_key=True, autoincrement=False),
    Column("username", String(255), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("last_used_ms", BigInteger, nullable=True),
    Column("detail", JSON, nullable=False, default=dict),
    Column("decision", String(8), nullable=True),
    Column("decided_by", String(255), nullable=True),
    Column("decided_ms", BigInteger, nullable=True),
    Column("note", Text, nullable=True),
    Column("outcome", Text, nullable=True),
)


class ReviewConflict(Exception):
    """The campaign is not open (decided items cannot change after the close), or no such item."""


@dataclass(frozen=True)
class Campaign:
    """A new campaign's settings.

    Attributes:
        title: what reviewers see.
        warehouse: review everyone whose scope covers this warehouse (``*`` included), or None.
        role: review everyone holding this role, or None (exactly one of the two is set).
        window_days: how far back "last used" looks, in days.
        deadline_ms: when undecided items get ``unreviewed``, ms since the epoch (UTC).
        unreviewed: ``revoke`` or ``keep``.
        created_by: the username that started it.
    """

    title: str
    warehouse: str | None
    role: str | None
    window_days: int
    deadline_ms: int
    unreviewed: str
    created_by: str


@dataclass(frozen=True)
class Item:
    """One thing a person holds, to keep or revoke.

    Attributes:
        username, user_id: whose.
        kind: ``role``, ``scope`` (name ``dimension=value``) or ``grant`` (name: the grant id).
        name: what.
        last_used_ms: last allowed use in the window (None: not used).
        detail: more for the reviewer (a grant's role and window, a role's permissions).
    """

    username: str
    user_id: str
    kind: str
    name: str
    last_used_ms: int | None
    detail: dict[str, Any]


class ReviewStore:
    """Campaigns and their items in the gateway's store.

    Args:
        engine: the shared store (SQLite or PostgreSQL).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, campaign: Campaign, items: list[Item], now_ms: int) -> str:
        """Store a new open campaign with its items; returns its id (32 hex digits)."""
        review_id = uuid.uuid4().hex
        async with self.engine.begin() as conn:
            await conn.execute(insert(access_reviews), {
                "review_id": review_id, "title": campaign.title, "warehouse": campaign.warehouse,
                "role": campaign.role, "window_days": campaign.window_days, "deadline_ms": campaign.deadline_ms,
                "unreviewed": campaign.unreviewed, "status": OPEN, "created_by": campaign.created_by,
                "created_ms": now_ms})
            if items:
                await conn.execute(insert(access_review_items), [
                    {"review_id": review_id, "item_id": n, "username": i.username, "user_id": i.user_id,
                     "kind": i.kind, "name": i.name, "last_used_ms": i.last_used_ms, "detail": i.detail}
                    for n, i in enumerate(items, start=1)])
        return review_id

    async def campaigns(self, limit: int = 200) -> list[dict[str, Any]]:
        """The newest campaigns (without their items or result), newest first."""
        t = access_reviews.c
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(*(c for c in access_reviews.c if c.name not in ("result",)))
                                      .order_by(t.created_ms.desc()).limit(limit))
            return [dict(r) for r in rows.mappings()]

    async def campaign(self, review_id: str) -> dict[str, Any] | None:
        """One campaign with ``items`` (in order), or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(access_reviews).where(access_reviews.c.review_id == review_id))
                   ).mappings().first()
            if row is None:
                return None
            items = await conn.execute(select(access_review_items).where(
                access_review_items.c.review_id == review_id).order_by(access_review_items.c.item_id))
            return {**dict(row), "items": [dict(i) for i in items.mappings()]}

    async def decide(self, review_id: str, item_id: int, decision: str, actor: str, note: str | None,
                     now_ms: int) -> None:
        """Record ``decision`` (keep or revoke) on an item of an open campaign before its deadline
        (a later decision replaces it).

        The campaign's row is locked first (a no-op update: a row lock on PostgreSQL, the write
        lock on SQLite), so a close cannot read the items between this check and this write.

        Raises:
            ReviewConflict: no such item, or the campaign is closing, closed or past its deadline.
        """
        i, r = access_review_items.c, access_reviews.c
        async with self.engine.begin() as conn:
            still_open = await conn.execute(update(access_reviews).where(
                and_(r.review_id == review_id, r.status == OPEN, r.deadline_ms > now_ms)).values(status=OPEN))
            if still_open.rowcount != 1:
                raise ReviewConflict(f"campaign {review_id} is no longer open")
            done = await conn.execute(update(access_review_items).where(
                and_(i.review_id == review_id, i.item_id == item_id)).values(
                decision=decision, decided_by=actor, decided_ms=now_ms, note=note))
            if done.rowcount != 1:
                raise ReviewConflict(f"campaign {review_id} has no item {item_id}")

    async def claim_close(self, review_id: str, actor: str, now_ms: int) -> str | None:
        """Move an open campaign to ``closing``; returns the claim (the close's token), or None
        when it is not open (someone else closes it)."""
        r = access_reviews.c
        claim = uuid.uuid4().hex
        async with self.engine.begin() as conn:
            done = await conn.execute(update(access_reviews).where(
                and_(r.review_id == review_id, r.status == OPEN)).values(
                status=CLOSING, closed_by=actor, closed_ms=now_ms, claim=claim, heartbeat_ms=now_ms))
            return claim if done.rowcount == 1 else None

    async def heartbeat(self, review_id: str, claim: str, now_ms: int) -> bool:
        """Tell others this close is alive; False when the claim was lost (another process took over)."""
        r = access_reviews.c
        async with self.engine.begin() as conn:
            done = await conn.execute(update(access_reviews).where(
                and_(r.review_id == review_id, r.status == CLOSING, r.claim == claim)).values(heartbeat_ms=now_ms))
            return bool(done.rowcount == 1)

    async def set_outcome(self, review_id: str, item_id: int, outcome: str, claim: str) -> None:
        """What closing did to an item (``kept``, ``revoked``, ``failed: ...``), written only by the
        close holding ``claim``."""
        i, r = access_review_items.c, access_reviews.c
        owner = select(r.review_id).where(and_(r.review_id == review_id, r.status == CLOSING,
                                               r.claim == claim)).exists()
        async with self.engine.begin() as conn:
            await conn.execute(update(access_review_items).where(
                and_(i.review_id == review_id, i.item_id == item_id, owner)).values(outcome=outcome))

    async def finish(self, review_id: str, result: dict[str, Any], signature: str, key_id: str, claim: str) -> bool:
        """Store the signed result and mark the campaign ``closed`` (only from ``closing``, only by
        the close holding ``claim``); False when the claim was lost."""
        r = access_reviews.c
        async with self.engine.begin() as conn:
            done = await conn.execute(update(access_reviews).where(
                and_(r.review_id == review_id, r.status == CLOSING, r.claim == claim)).values(
                status=CLOSED, result=json.dumps(result, ensure_ascii=False, sort_keys=True), signature=signature,
                key_id=key_id))
            return bool(done.rowcount == 1)

    async def with_failures(self) -> list[str]:
        """Closed campaigns with an item whose revocation failed (to retry)."""
        i, r = access_review_items.c, access_reviews.c
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(i.review_id).distinct().where(
                i.outcome.like("failed%"), i.review_id.in_(select(r.review_id).where(r.status == CLOSED))))
            return [str(x) for x in rows.scalars()]

    async def set_retried_outcome(self, review_id: str, item_id: int, outcome: str) -> bool:
        """A retried revocation's new outcome (only over a ``failed`` one of a closed campaign); False when
        another process got there first."""
        i, r = access_review_items.c, access_reviews.c
        closed = select(r.review_id).where(and_(r.review_id == review_id, r.status == CLOSED)).exists()
        async with self.engine.begin() as conn:
            done = await conn.execute(update(access_review_items).where(
                and_(i.review_id == review_id, i.item_id == item_id, i.outcome.like("failed%"), closed)).values(
                outcome=outcome))
            return bool(done.rowcount == 1)

    async def replace_result(self, review_id: str, result: dict[str, Any], signature: str, key_id: str) -> None:
        """Store a closed campaign's re-signed result (after a retry changed an outcome)."""
        r = access_reviews.c
        async with self.engine.begin() as conn:
            await conn.execute(update(access_reviews).where(and_(r.review_id == review_id, r.status == CLOSED)).values(
                result=json.dumps(result, ensure_ascii=False, sort_keys=True), signature=signature, key_id=key_id))

    async def due(self, now_ms: int) -> list[tuple[str, str]]:
        """Campaigns to close, ``(review_id, status)``: open past their deadline, or ``closing``
        without a heartbeat for :data:`STALE_MS` (its process died mid-close; closing again is
        safe: revocations already done are skipped)."""
        r = access_reviews.c
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(r.review_id, r.status).where(
                ((r.status == OPEN) & (r.deadline_ms <= now_ms))
                | ((r.status == CLOSING) & (r.heartbeat_ms <= now_ms - STALE_MS))))
            return [(str(review_id), str(status)) for review_id, status in rows]

    async def reclaim(self, review_id: str, actor: str, now_ms: int) -> str | None:
        """Take over a stale ``closing`` campaign; returns the new claim, or None when it is not stale.
        ``closed_by`` stays whoever started the close (``actor`` completes it)."""
        r = access_reviews.c
        claim = uuid.uuid4().hex
        async with self.engine.begin() as conn:
            done = await conn.execute(update(access_reviews).where(
                and_(r.review_id == review_id, r.status == CLOSING, r.heartbeat_ms <= now_ms - STALE_MS)).values(
                claim=claim, heartbeat_ms=now_ms))
            return claim if done.rowcount == 1 else None
