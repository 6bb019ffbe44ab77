"""The engine: every event, from any source, goes through here once.

For each event: skip it when its key was seen (push and backfill overlap by design),
add names the detectors need (usernames behind Keycloak ids), let every detector look
at it, and store the event with the alerts it opens or joins in one transaction. Events
are handled one at a time, so detector state follows arrival order.

If the store fails, the event is refused (the sender retries; the backfill re-reads
it) and the detectors' memory is rebuilt from the store before the next event, so an
event that was not stored has left no trace in them either.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace

from sqlalchemy.exc import SQLAlchemyError

from alerting.detectors import Detection, Detector
from alerting.events import ADMIN, SecurityEvent
from alerting.store import AlertStore, IngestResult, now_ms, transient

log = logging.getLogger(__name__)

#: Looks up a Keycloak user id; returns the username or None (unknown user, Keycloak down).
UsernameLookup = Callable[[str], Awaitable[str | None]]

_USER_PATH = re.compile(r"^users/([^/]+)")


class Engine:
    """De-duplicate, enrich, detect, group.

    Args:
        store: where events and alerts live.
        make_detectors: builds the detectors (with empty state), each seeing every event.
        notifiers: names of the notifiers a new alert is queued for.
        lookback_ms: how far back a restart replays stored events into the detectors.
        username_of: resolves the ids of admin events to usernames (None: ids are shown).
        on_new_alert: called after a transaction that opened alerts (wakes the delivery worker).
    """

    def __init__(self, store: AlertStore, make_detectors: Callable[[], list[Detector]], notifiers: list[str],
                 lookback_ms: int,
                 username_of: UsernameLookup | None = None, on_new_alert: Callable[[], None] | None = None) -> None:
        self._store = store
        self._make_detectors = make_detectors
        self._detectors: list[Detector] = []
        self._notifiers = notifiers
        self._lookback_ms = lookback_ms
        self._username_of = username_of
        self._on_new_alert = on_new_alert
        self._lock = asyncio.Lock()
        self._stale = True

    async def prime(self) -> int:
        """Replay recent stored events into the detectors (reporting nothing). Returns how many."""
        self._detectors = self._make_detectors()
        replayed = 0
        async for event in self._store.recent_events(now_ms() - self._lookback_ms):
            for detector in self._detectors:
                detector.observe(event)
            replayed += 1
        self._stale = False
        return replayed

    async def ingest(self, event: SecurityEvent, source: str) -> IngestResult:
        """Handle one event.

        Args:
            event: the event.
            source: ``push``, ``backfill`` or ``audit`` (kept with the event).

        Returns:
            What happened (duplicate, alerts opened or joined).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store failed; the event was not taken in.
        """
        async with self._lock:
            if await self._store.seen(event.key):
                return IngestResult(duplicate=True)
            if self._stale:
                await self.prime()
            event = await self._enrich(event)
            detections: list[Detection] = []
            for detector in self._detectors:
                detections.extend(detector.observe(event))
            try:
                result = await self._store.record(event, source, detections, self._notifiers)
            except BaseException:  # cancelled too: the detectors counted an event that was not stored
                self._stale = True
                raise
        if result.new_alerts and self._on_new_alert is not None:
            self._on_new_alert()
        return result

    async def _enrich(self, event: SecurityEvent) -> SecurityEvent:
        if self._username_of is None or event.kind != ADMIN:
            return event
        extra: dict[str, str] = {}
        match = _USER_PATH.match(str(event.details.get("resource_path", "")))
        if match:
            name = await self._username_of(match.group(1))
            if name:
                extra["target_username"] = name
        if event.user_id:
            name = await self._username_of(event.user_id)
            if name:
                extra["actor_username"] = name
        return replace(event, details={**event.details, **extra}) if extra else event


async def ingest_or_skip(engine: Engine, event: SecurityEvent, source: str) -> bool:
    """Ingest for the pull sources: True when the event was new.

    An event the store refuses for its own data (a poison event: it would fail on every
    retry and hold its source's checkpoint forever) is logged as an error and skipped.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: a transient store failure (the caller retries later).
    """
    try:
        return not (await engine.ingest(event, source)).duplicate
    except SQLAlchemyError as exc:
        if transient(exc):
            raise
        log.error("event %s from %s cannot be stored and is skipped: %s", event.key, source, exc)
        return False
