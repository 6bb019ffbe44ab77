"""Temporary grants: a person, a role, a data scope and a validity window.

Keycloak has no expiry on role mappings, so a grant is enforced twice: the person's
token carries the window (attribute ``wms_grant`` = ``role|valid_from|valid_until``,
epoch seconds) and the policy ignores the role outside it; and a sweeper removes
ended grants from Keycloak (and disables accounts that existed only for them). The
store keeps every grant for the record; nothing is deleted.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, String, Table, Text, and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from authorizer.db import metadata

SHANGHAI = ZoneInfo("Asia/Shanghai")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MAX_ROWS = 500

grants = Table(
    "grants",
    metadata,
    Column("grant_id", String(64), primary_key=True),
    Column("username", String(255), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("role", String(64), nullable=False),
    Column("scope", JSON, nullable=False),
    Column("valid_from_s", BigInteger, nullable=False),
    Column("valid_until_s", BigInteger, nullable=False),
    Column("temporary_account", Boolean, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("swept_ms", BigInteger, nullable=True),
    Column("note", Text, nullable=True),
    Column("claimed_ms", BigInteger, nullable=True),  # a proxy process is ending it (several may sweep)
    Index("grants_due", "swept_ms", "valid_until_s"),
)


class GrantError(ValueError):
    """A grant request is invalid; the message names the row and the field."""


def parse_time(text: str, where: str) -> dt.datetime:
    """An ISO 8601 time; without an offset it is taken as Asia/Shanghai (the warehouses' time).

    Raises:
        GrantError: not ISO 8601.
    """
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise GrantError(f"{where}: {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=SHANGHAI)


def shanghai(seconds: int) -> str:
    """Epoch seconds shown in Asia/Shanghai time, ISO 8601 with offset."""
    return dt.datetime.fromtimestamp(seconds, SHANGHAI).isoformat(timespec="minutes")


#: The longest a grant given in ``hours`` may last (30 days).
MAX_GRANT_HOURS = 720


@dataclass(frozen=True)
class GrantRow:
    """One line of a bulk grant (the CSV columns of ``wmsgate access bulk-grant``).

    The window is ``valid_from``/``valid_until`` (absolute, Asia/Shanghai when no offset), or
    ``hours``: then it starts when the row is parsed to be carried out, which for a held
    (four-eyes) grant is when it is approved and runs, so waiting for approval does not eat
    into the time granted (JIT access). Times are epoch seconds (UTC).
    """

    username: str
    display_name: str
    role: str
    scope: dict[str, list[str]]
    valid_from: int
    valid_until: int

    @classmethod
    def parse(cls, row: dict[str, Any], number: int) -> GrantRow:
        """Validate one row (``warehouses``/``channels``/``order_types`` hold ``|``-separated values).

        Raises:
            GrantError: a missing or malformed field, or an empty or reversed window.
        """
        where = f"row {number}"
        username = str(row.get("username", "")).strip().lower()
        if not USERNAME.match(username):
            raise GrantError(f"{where}: username {username!r} must be 3-64 of a-z 0-9 . _ -")
        role = str(row.get("role", "")).strip()
        if not role:
            raise GrantError(f"{where}: role is required")
        scope = {dim: [v.strip() for v in str(row.get(col, "")).split("|") if v.strip()]
                 for dim, col in (("warehouse", "warehouses"), ("channel", "channels"), ("order_type", "order_types"))}
        if not all(scope.values()):
            raise GrantError(f"{where}: warehouses, channels and order_types are required (* = all)")
        hours = str(row.get("hours") or "").strip()
        if hours:  # the clock starts when the grant is made: at approval when it is held
            if str(row.get("valid_from") or "").strip() or str(row.get("valid_until") or "").strip():
                raise GrantError(f"{where}: give hours or valid_from/valid_until, not both")
            try:
                seconds = round(float(hours) * 3600)
            except (ValueError, OverflowError):  # "inf", "1e400" and the like are no number of hours
                raise GrantError(f"{where}: hours {hours!r} must be a number") from None
            if not 0 < seconds <= MAX_GRANT_HOURS * 3600:
                raise GrantError(f"{where}: hours must be more than 0 and at most {MAX_GRANT_HOURS}")
            now = int(time.time())
            return cls(username, str(row.get("display_name", "")).strip()[:100], role, scope, now, now + seconds)
        start = parse_time(str(row.get("valid_from", "")), f"{where} valid_from")
        end = parse_time(str(row.get("valid_until", "")), f"{where} valid_until")
        if end <= start:
            raise GrantError(f"{where}: valid_until must be after valid_from")
        return cls(username, str(row.get("display_name", "")).strip()[:100], role, scope,
                   int(start.timestamp()), int(end.timestamp()))

    def attribute(self) -> str:
        """The ``wms_grant`` attribute value (carried into the token)."""
        return f"{self.role}|{self.valid_from}|{self.valid_until}"


def parse_rows(rows: list[dict[str, Any]]) -> list[GrantRow]:
    """Validate a whole bulk grant (all rows or none).

    Raises:
        GrantError: no rows, too many, a bad row, or a person listed twice.
    """
    if not rows:
        raise GrantError("no rows")
    if len(rows) > MAX_ROWS:
        raise GrantError(f"{len(rows)} rows; at most {MAX_ROWS} per request")
    parsed = [GrantRow.parse(row, n) for n, row in enumerate(rows, 1)]
    names = [g.username for g in parsed]
    if len(set(names)) != len(names):
        raise GrantError("a person is listed twice")
    return parsed


class GrantStore:
    """The record of grants (for the sweeper and for auditors).

    Args:
        engine: the shared store's engine.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, row: GrantRow, user_id: str, temporary_account: bool, created_by: str) -> str:
        """Record a grant; returns its id."""
        grant_id = uuid.uuid4().hex
        async with self.engine.begin() as conn:
            await conn.execute(insert(grants), {
                "grant_id": grant_id, "username": row.username, "user_id": user_id, "role": row.role,
                "scope": row.scope, "valid_from_s": row.valid_from, "valid_until_s": row.valid_until,
                "temporary_account": temporary_account, "created_by": created_by,
                "created_ms": int(dt.datetime.now(dt.UTC).timestamp() * 1000), "swept_ms": None,
                "note": None})
        return grant_id

    async def due(self, now_s: int) -> list[dict[str, Any]]:
        """Ended grants the sweeper has not handled yet."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(grants).where(and_(grants.c.swept_ms.is_(None),
                                                                grants.c.valid_until_s <= now_s)))
            return [dict(r) for r in rows.mappings()]

    async def active_for(self, user_id: str, now_s: int) -> list[dict[str, Any]]:
        """Grants of ``user_id`` whose window has not ended."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(grants).where(and_(grants.c.user_id == user_id,
                                                                grants.c.swept_ms.is_(None),
                                                                grants.c.valid_until_s > now_s)))
            return [dict(r) for r in rows.mappings()]

    async def active(self, now_s: int) -> list[dict[str, Any]]:
        """Every grant whose window has not ended (``now_s``: epoch seconds), for usage reviews."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(grants).where(and_(grants.c.swept_ms.is_(None),
                                                                grants.c.valid_until_s > now_s)))
            return [dict(r) for r in rows.mappings()]

    async def claim(self, grant_id: str, stale_after_ms: int = 120_000) -> bool:
        """Take a grant to end it: True for exactly one of several proxy processes sweeping at
        once. A claim older than ``stale_after_ms`` (its process died) can be taken again."""
        now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        async with self.engine.begin() as conn:
            taken = await conn.execute(update(grants).where(and_(
                grants.c.grant_id == grant_id, grants.c.swept_ms.is_(None),
                or_(grants.c.claimed_ms.is_(None), grants.c.claimed_ms < now - stale_after_ms))).values(claimed_ms=now))
            return bool(taken.rowcount)

    async def release(self, grant_id: str) -> None:
        """Give a claim back (ending the grant failed; the next sweep tries again)."""
        async with self.engine.begin() as conn:
            await conn.execute(update(grants).where(grants.c.grant_id == grant_id).values(claimed_ms=None))

    async def mark_swept(self, grant_id: str, note: str) -> None:
        """Record that the sweeper removed an ended grant."""
        async with self.engine.begin() as conn:
            await conn.execute(update(grants).where(grants.c.grant_id == grant_id).values(
                swept_ms=int(dt.datetime.now(dt.UTC).timestamp() * 1000), note=note))
