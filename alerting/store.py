"""The alerting service's store (SQLAlchemy Core; SQLite by default, PostgreSQL at scale).

Tables: ``alert_events`` (every event seen, by de-duplication key; the detectors' memory
is rebuilt from it after a restart), ``alert_checkpoints`` (how far each pull source has
been read), ``alerts`` (grouped, with status) and ``alert_deliveries`` (an outbox: one
row per alert and notifier until it is sent). An event, the alerts it makes and their
deliveries are written in one transaction, so none of them can exist without the others.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerting.detectors.base import Detection
from alerting.events import SecurityEvent
from authorizer.db import create_schema, make_engine

schema = MetaData()

#: Alert states: open -> acknowledged -> resolved (open -> resolved also allowed).
OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
#: A delivery's purpose: the alert itself (None), or its escalation (open too long).
ESCALATION = "escalation"
#: Most evidence event keys kept on one alert (the count keeps going).
MAX_EVIDENCE = 200

alert_events = Table(
    "alert_events", schema,
    Column("event_key", String(200), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("time_ms", BigInteger, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("source", String(16), nullable=False),
    Column("doc", JSON, nullable=False),
    Index("alert_events_time", "time_ms"),
)

alert_checkpoints = Table(
    "alert_checkpoints", schema,
    Column("source", String(64), primary_key=True),
    Column("position", Text, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

alerts = Table(
    "alerts", schema,
    Column("alert_id", String(32), primary_key=True),
    Column("rule", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("group_key", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("title_zh", Text, nullable=False),
    Column("title_en", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("first_seen_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("facts", JSON, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("acknowledged_by", String(255), nullable=True),
    Column("acknowledged_ms", BigInteger, nullable=True),
    Column("resolved_by", String(255), nullable=True),
    Column("resolved_ms", BigInteger, nullable=True),
    Column("note", Text, nullable=True),
    Column("escalated_ms", BigInteger, nullable=True),
    Index("alerts_group", "group_key", "last_seen_ms"),
    Index("alerts_status", "status", "last_seen_ms"),
)

alert_deliveries = Table(
    "alert_deliveries", schema,
    Column("delivery_id", Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True),
    Column("alert_id", String(32), nullable=False),
    Column("notifier", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("sent_ms", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("purpose", String(16), nullable=True),
    Index("alert_deliveries_due", "status", "next_attempt_ms"),
    Index("alert_deliveries_alert", "alert_id"),
)

#: Delivery states.
PENDING, SENT = "pending", "sent"


def now_ms() -> int:
    """The current time, ms since the epoch (UTC)."""
    return int(time.time() * 1000)


def transient(exc: SQLAlchemyError) -> bool:
    """Whether a store failure may go away on retry (connection lost, locked, timed out) as
    opposed to a failure of this event's data, which would fail forever (a poison event)."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class AlertConflict(Exception):
    """The alert is not in a state that allows the change (e.g. acknowledging a resolved alert)."""


@dataclass(frozen=True)
class IngestResult:
    """What one event did.

    Attributes:
        duplicate: the event had been seen before (nothing else happened).
        new_alerts: ids of alerts it opened (each with deliveries queued).
        grouped: ids of open alerts it was counted on.
    """

    duplicate: bool
    new_alerts: tuple[str, ...] = ()
    grouped: tuple[str, ...] = ()


def alert_document(row: Any) -> dict[str, Any]:
    """An alert row as the API and notifiers show it (times ISO 8601 UTC and ms)."""
    def iso(ms: int | None) -> str | None:
        return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(
            timespec="milliseconds")

    r = dict(row)
    return {"alert_id": r["alert_id"], "rule": r["rule"], "severity": r["severity"], "status": r["status"],
            "subject": r["subject"], "title_zh": r["title_zh"], "title_en": r["title_en"], "count": r["count"],
            "first_seen": iso(r["first_seen_ms"]), "last_seen": iso(r["last_seen_ms"]),
            "first_seen_ms": r["first_seen_ms"], "last_seen_ms": r["last_seen_ms"], "evidence": r["evidence"],
            "facts": r["facts"], "acknowledged_by": r["acknowledged_by"], "acknowledged_at": iso(r["acknowledged_ms"]),
            "resolved_by": r["resolved_by"], "resolved_at": iso(r["resolved_ms"]), "note": r["note"]}


class AlertStore:
    """Events, checkpoints, alerts and deliveries.

    Args:
        url: SQLAlchemy async URL (``sqlite+aiosqlite:///alerts.db``, ``postgresql+asyncpg://...``).
        engine: an engine to use instead (tests).
    """

    def __init__(self, url: str = "", engine: AsyncEngine | None = None) -> None:
        self.engine = engine or make_engine(url)

    async def create_schema(self) -> None:
        """Create missing tables (idempotent)."""
        await create_schema(self.engine, schema)

    async def close(self) -> None:
        """Release the connection pool."""
        await self.engine.dispose()

    # -- events ---------------------------------------------------------------------------------
    async def seen(self, key: str) -> bool:
        """Whether an event with this de-duplication key is stored."""
        async with self.engine.connect() as conn:
            found = await conn.execute(select(alert_events.c.event_key).where(alert_events.c.event_key == key))
            return found.first() is not None

    async def record(self, event: SecurityEvent, source: str, detections: list[Detection],
                     notifiers: list[str]) -> IngestResult:
        """Store ``event`` with the alerts its detections open or join, in one transaction.

        Args:
            event: the event (its ``key`` must be new; see :meth:`seen`).
            source: ``push``, ``backfill`` or ``audit``.
            detections: what the detectors reported for it.
            notifiers: names of the notifiers every new alert is queued for.

        Returns:
            The result; ``duplicate`` when another writer stored the same key first.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store failed (nothing was written).
        """
        received = now_ms()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(alert_events).values(
                    event_key=event.key, kind=event.kind, time_ms=event.time_ms, received_ms=received, source=source,
                    doc=event.document()))
                new, grouped = [], []
                for detection in detections:
                    alert_id, created = await self._group(conn, detection, received)
                    if created:
                        new.append(alert_id)
                        for name in notifiers:
                            await conn.execute(insert(alert_deliveries).values(
                                alert_id=alert_id, notifier=name, status=PENDING, attempts=0,
                                next_attempt_ms=received, created_ms=received))
                    else:
                        grouped.append(alert_id)
        except IntegrityError:
            if await self.seen(event.key):
                return IngestResult(duplicate=True)
            raise
        return IngestResult(False, tuple(new), tuple(grouped))

    @staticmethod
    async def _group(conn: AsyncConnection, d: Detection, received: int) -> tuple[str, bool]:
        row = (await conn.execute(
            select(alerts).where(and_(alerts.c.group_key == d.group_key, alerts.c.status != RESOLVED))
            .order_by(alerts.c.last_seen_ms.desc()).limit(1))).mappings().first()
        if row is not None and d.at_ms - row["last_seen_ms"] <= d.group_window_ms:
            evidence = list(row["evidence"])
            evidence += [e for e in d.evidence if e not in evidence]
            joined = await conn.execute(
                update(alerts).where(and_(alerts.c.alert_id == row["alert_id"], alerts.c.status != RESOLVED,
                                          alerts.c.count == row["count"]))
                .values(count=row["count"] + 1, last_seen_ms=max(row["last_seen_ms"], d.at_ms),
                        title_zh=d.title_zh, title_en=d.title_en,  # the newest sighting's figures
                        first_seen_ms=min(row["first_seen_ms"], d.at_ms), evidence=evidence[-MAX_EVIDENCE:],
                        facts={**row["facts"], **d.facts}))
            if joined.rowcount:
                return row["alert_id"], False
            # resolved (or changed) meanwhile: the sighting opens a new alert rather than vanish
        alert_id = uuid.uuid4().hex
        await conn.execute(insert(alerts).values(
            alert_id=alert_id, rule=d.rule, severity=d.severity, group_key=d.group_key, subject=d.subject,
            title_zh=d.title_zh, title_en=d.title_en, status=OPEN, first_seen_ms=d.at_ms, last_seen_ms=d.at_ms,
            count=1, evidence=list(d.evidence)[-MAX_EVIDENCE:], facts=d.facts, created_ms=received))
        return alert_id, True

    async def recent_events(self, since_ms: int) -> AsyncIterator[SecurityEvent]:
        """Stored events with ``time_ms >= since_ms`` in time order (to rebuild detector state)."""
        async with self.engine.connect() as conn:
            result = await conn.stream(select(alert_events.c.doc).where(alert_events.c.time_ms >= since_ms)
                                       .order_by(alert_events.c.time_ms, alert_events.c.received_ms))
            async for (doc,) in result:
                yield SecurityEvent.from_document(doc)

    async def forget_events(self, before_ms: int) -> int:
        """Delete stored events older than ``before_ms`` (alerts keep their evidence keys). Returns how many."""
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(alert_events).where(alert_events.c.time_ms < before_ms))
            return result.rowcount or 0

    # -- checkpoints ------------------------------------------------------------------------------
    async def checkpoint(self, source: str) -> str | None:
        """The saved position of a pull source, or None."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(alert_checkpoints.c.position)
                                       .where(alert_checkpoints.c.source == source))).scalar()

    async def save_checkpoint(self, source: str, position: str) -> None:
        """Save how far ``source`` has been read."""
        async with self.engine.begin() as conn:
            changed = await conn.execute(update(alert_checkpoints).where(alert_checkpoints.c.source == source)
                                         .values(position=position, updated_ms=now_ms()))
            if not changed.rowcount:
                await conn.execute(insert(alert_checkpoints).values(source=source, position=position,
                                                                    updated_ms=now_ms()))

    # -- alerts -------------------------------------------------------------------------------------
    async def alert(self, alert_id: str) -> dict[str, Any] | None:
        """One alert's document, or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(alerts).where(alerts.c.alert_id == alert_id))).mappings().first()
            return None if row is None else alert_document(row)

    async def alerts(self, status: str | None = None, rule: str | None = None, limit: int = 100,
                     offset: int = 0) -> list[dict[str, Any]]:
        """Alerts, most recently seen first, optionally by status and rule."""
        stmt = select(alerts)
        if status is not None:
            stmt = stmt.where(alerts.c.status == status)
        if rule is not None:
            stmt = stmt.where(alerts.c.rule == rule)
        stmt = stmt.order_by(alerts.c.last_seen_ms.desc(), alerts.c.alert_id).limit(limit).offset(offset)
        async with self.engine.connect() as conn:
            return [alert_document(r) for r in (await conn.execute(stmt)).mappings().all()]

    async def step_up_demands(self, rules: frozenset[str], since_ms: int) -> list[dict[str, Any]]:
        """The people unresolved alerts of ``rules`` seen since ``since_ms`` name: ``{"user_id",
        "username", "since_ms" (when the alert opened: its first sighting, ms UTC), "alert_id",
        "rule"}``."""
        if not rules:
            return []
        stmt = select(alerts.c.alert_id, alerts.c.rule, alerts.c.first_seen_ms, alerts.c.facts).where(
            alerts.c.rule.in_(sorted(rules)), alerts.c.status != RESOLVED, alerts.c.last_seen_ms >= since_ms)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [{"user_id": r["facts"]["user_id"], "username": r["facts"].get("username", ""),
                 "since_ms": r["first_seen_ms"], "alert_id": r["alert_id"], "rule": r["rule"]}
                for r in rows if isinstance(r["facts"], dict) and r["facts"].get("user_id")]

    async def counts(self) -> dict[str, int]:
        """How many alerts are in each status."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(alerts.c.status, func.count()).group_by(alerts.c.status))).all()
        return {status: n for status, n in rows}

    async def change_status(self, alert_id: str, to: str, by: str, note: str | None) -> dict[str, Any]:
        """Acknowledge or resolve an alert.

        Args:
            to: ``acknowledged`` or ``resolved``.
            by: who did it (username).
            note: an optional comment (kept; the latest one wins).

        Returns:
            The alert after the change.

        Raises:
            KeyError: no such alert.
            AlertConflict: acknowledging an alert that is not open, or resolving a resolved one.
        """
        allowed_from = (OPEN,) if to == ACKNOWLEDGED else (OPEN, ACKNOWLEDGED)
        values: dict[str, Any] = {"status": to}
        if to == ACKNOWLEDGED:
            values.update(acknowledged_by=by, acknowledged_ms=now_ms())
        else:
            values.update(resolved_by=by, resolved_ms=now_ms())
        if note:
            values["note"] = note
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(alerts.c.status).where(alerts.c.alert_id == alert_id))).first()
            if row is None:
                raise KeyError(alert_id)
            changed = await conn.execute(update(alerts).where(and_(alerts.c.alert_id == alert_id,
                                                                  alerts.c.status.in_(allowed_from))).values(**values))
            if not changed.rowcount:
                raise AlertConflict(row[0])
        document = await self.alert(alert_id)
        assert document is not None
        return document

    # -- deliveries -----------------------------------------------------------------------------------
    async def due_deliveries(self, at_ms: int, limit: int = 50) -> list[dict[str, Any]]:
        """Pending deliveries whose next attempt is due, oldest first."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(alert_deliveries).where(and_(alert_deliveries.c.status == PENDING,
                                                    alert_deliveries.c.next_attempt_ms <= at_ms))
                .order_by(alert_deliveries.c.next_attempt_ms, alert_deliveries.c.delivery_id).limit(limit)
            )).mappings().all()
        return [dict(r) for r in rows]

    async def next_due_ms(self) -> int | None:
        """When the earliest pending delivery is due, or None when nothing is pending."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(func.min(alert_deliveries.c.next_attempt_ms))
                                       .where(alert_deliveries.c.status == PENDING))).scalar()

    async def delivered(self, delivery_id: int) -> None:
        """Mark a delivery sent."""
        async with self.engine.begin() as conn:
            await conn.execute(update(alert_deliveries).where(alert_deliveries.c.delivery_id == delivery_id)
                               .values(status=SENT, sent_ms=now_ms(), attempts=alert_deliveries.c.attempts + 1,
                                       last_error=None))

    async def delivery_failed(self, delivery_id: int, error: str, retry_at_ms: int) -> None:
        """Record a failed attempt; the delivery stays pending until ``retry_at_ms``."""
        async with self.engine.begin() as conn:
            await conn.execute(update(alert_deliveries).where(alert_deliveries.c.delivery_id == delivery_id)
                               .values(attempts=alert_deliveries.c.attempts + 1, next_attempt_ms=retry_at_ms,
                                       last_error=error[:2000]))

    async def postpone(self, delivery_ids: list[int], at_ms: int) -> None:
        """Hold pending deliveries until ``at_ms`` without counting an attempt (a robot's
        pacing: the next digest of their rule, or the robot's rate limit)."""
        if not delivery_ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(update(alert_deliveries).where(and_(
                alert_deliveries.c.delivery_id.in_(delivery_ids), alert_deliveries.c.status == PENDING))
                .values(next_attempt_ms=at_ms))

    async def escalate_due(self, created_before_ms: int, notifiers: list[str]) -> list[str]:
        """Escalate the rules whose oldest open (unacknowledged), not yet escalated alert was
        raised before ``created_before_ms``: every such alert of those rules, younger ones too (a
        burst escalates once), is marked escalated and gets an ``escalation`` delivery to each of
        ``notifiers``, in one transaction. Returns their ids."""
        at = now_ms()
        waiting = and_(alerts.c.status == OPEN, alerts.c.escalated_ms.is_(None))
        async with self.engine.begin() as conn:
            rules = list((await conn.execute(select(alerts.c.rule).where(and_(
                waiting, alerts.c.created_ms <= created_before_ms)).distinct())).scalars())
            ids: list[str] = []
            if rules:
                stmt = select(alerts.c.alert_id).where(and_(waiting, alerts.c.rule.in_(rules)))
                ids = list((await conn.execute(stmt.order_by(alerts.c.created_ms))).scalars())
            for alert_id in ids:
                changed = await conn.execute(update(alerts).where(and_(
                    alerts.c.alert_id == alert_id, alerts.c.escalated_ms.is_(None))).values(escalated_ms=at))
                if not changed.rowcount:
                    continue
                for name in notifiers:
                    await conn.execute(insert(alert_deliveries).values(
                        alert_id=alert_id, notifier=name, status=PENDING, attempts=0, next_attempt_ms=at,
                        created_ms=at, purpose=ESCALATION))
        return ids

    async def deliveries(self, alert_id: str) -> list[dict[str, Any]]:
        """Every delivery of an alert (status, attempts, last error)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(alert_deliveries).where(alert_deliveries.c.alert_id == alert_id)
                                       .order_by(alert_deliveries.c.delivery_id))).mappings().all()
        return [{k: r[k] for k in ("notifier", "status", "attempts", "last_error", "sent_ms", "next_attempt_ms",
                                   "purpose")} for r in rows]


async def service_status(store: AlertStore) -> dict[str, Any]:
    """Checkpoints of the pull sources, alert counts and pending deliveries (for ``GET /status``)."""
    async with store.engine.connect() as conn:
        checkpoints = (await conn.execute(select(alert_checkpoints))).mappings().all()
        pending = (await conn.execute(select(alert_deliveries.c.notifier, func.count())
                                      .where(alert_deliveries.c.status == PENDING)
                                      .group_by(alert_deliveries.c.notifier))).all()
        events = (await conn.execute(select(alert_events.c.source, func.count())
                                     .group_by(alert_events.c.source))).all()
    return {"checkpoints": {r["source"]: {"position": r["position"], "updated_ms": r["updated_ms"]}
                            for r in checkpoints},
            "alerts": await store.counts(), "pending_deliveries": {name: n for name, n in pending},
            "events_stored": {source: n for source, n in events}}
