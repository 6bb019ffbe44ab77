"""The pull path: Keycloak's event REST API read from a persisted checkpoint.

The plugin pushes events as they happen; this reads the realm's stored events
(``GET /admin/realms/{realm}/events`` and ``/admin-events``, ascending by time, from
the checkpoint) every ``interval_seconds``, so events emitted while the alerting
service was down, or that the plugin gave up on, still reach the detectors. The engine
drops what the push path already delivered (same event id). The realm must store
events (``eventsEnabled``, ``adminEventsEnabled``: the realm-as-code turns them on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from keycloak.exceptions import KeycloakError

from alerting.engine import Engine, ingest_or_skip
from alerting.events import EventFormatError, SecurityEvent, from_rest_admin, from_rest_user
from alerting.store import AlertStore, now_ms
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection

log = logging.getLogger(__name__)

#: Re-read this far behind the checkpoint (ms): an event committed late with an earlier
#: time is still found; repeats are dropped by id.
OVERLAP_MS = 60_000
PAGE = 200

Fetch = Callable[[dict[str, Any]], Awaitable[list[dict[str, Any]]]]


def keycloak_admin(server_url: str, realm: str, client_id: str, client_secret: str,
                   verify: bool | str = True) -> KeycloakAdmin:
    """A python-keycloak admin client with a service account (client credentials grant).

    Args:
        verify: TLS verification: True (system CAs) or the path of a CA bundle (PEM).
    """
    return KeycloakAdmin(connection=KeycloakOpenIDConnection(
        server_url=server_url.rstrip("/") + "/", realm_name=realm, client_id=client_id,
        client_secret_key=client_secret, grant_type="client_credentials", timeout=20, verify=verify))


class KeycloakBackfill:
    """Reads user and admin events from Keycloak into the engine.

    Args:
        engine: where events go.
        store: where the checkpoints live (sources ``keycloak-user``, ``keycloak-admin``).
        admin: a python-keycloak admin client allowed ``view-events``.
        interval_seconds: time between passes, seconds.
        first_lookback_ms: how far back the very first pass reads (no checkpoint yet), ms.
    """

    def __init__(self, engine: Engine, store: AlertStore, admin: KeycloakAdmin, interval_seconds: float = 30.0,
                 first_lookback_ms: int = 24 * 3600 * 1000) -> None:
        self._engine = engine
        self._store = store
        self._interval = interval_seconds
        self._first_lookback_ms = first_lookback_ms
        self._sources: list[tuple[str, Fetch, Callable[[dict[str, Any]], SecurityEvent]]] = [
            ("keycloak-user", admin.a_get_events, from_rest_user),
            ("keycloak-admin", admin.a_get_admin_events, from_rest_admin),
        ]

    async def poll(self) -> int:
        """One pass over both sources; returns how many new events were taken in.

        Raises:
            keycloak.exceptions.KeycloakError, OSError: Keycloak unreachable or refused
                (the checkpoint stays; the next pass starts from it).
            sqlalchemy.exc.SQLAlchemyError: the store failed (likewise).
        """
        taken = 0
        for source, fetch, convert in self._sources:
            taken += await self._poll_source(source, fetch, convert)
        return taken

    async def _poll_source(self, source: str, fetch: Fetch, convert: Callable[[dict[str, Any]], SecurityEvent]) -> int:
        saved = await self._store.checkpoint(source)
        checkpoint = int(saved) if saved else now_ms() - self._first_lookback_ms
        # keyset paging: each page starts at the newest time seen (ties and deletions between
        # pages cannot shift an offset past an event); repeats are dropped by event id
        start, first, taken = max(0, checkpoint - OVERLAP_MS), 0, 0
        newest = checkpoint
        while True:
            page = await fetch({"dateFrom": str(start), "direction": "asc", "first": first, "max": PAGE})
            if not isinstance(page, list):
                raise TypeError(f"Keycloak answered {type(page).__name__} for {source}, not a list")
            for rep in page:
                try:
                    event = convert(rep)
                except EventFormatError as exc:
                    log.warning("%s: skipping a malformed event %s: %s", source, rep.get("id"), exc)
                    continue
                if await ingest_or_skip(self._engine, event, "backfill"):
                    taken += 1
                newest = max(newest, event.time_ms)
            if len(page) < PAGE:
                break
            last = max(int(rep.get("time") or 0) for rep in page)
            if last > start:
                start, first = last, 0
            else:  # a whole page within one millisecond: step over it by offset
                first += PAGE
            await self._store.save_checkpoint(source, str(newest))
        await self._store.save_checkpoint(source, str(newest))
        if taken:
            log.info("%s: %d event(s) taken in from Keycloak's event store", source, taken)
        return taken

    async def catch_up(self, timeout_seconds: float = 30.0) -> int:
        """One pass before the service takes pushed events (start-up): whatever happened while
        it was down goes through the detectors first. Returns how many events were taken in;
        a Keycloak that is down or slow is logged and left to the periodic passes."""
        try:
            return await asyncio.wait_for(self.poll(), timeout=timeout_seconds)
        except (KeycloakError, OSError, TimeoutError) as exc:
            log.warning("start-up catch-up from Keycloak's event store failed (will retry): %s", exc)
        except Exception:
            log.exception("start-up catch-up from Keycloak's event store failed (will retry)")
        return 0

    async def run_forever(self) -> None:
        """Poll every ``interval_seconds`` until cancelled; failures are logged and retried."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.poll()
            except (KeycloakError, OSError) as exc:
                log.warning("Keycloak event backfill failed (will retry): %s", exc)
            except Exception:
                log.exception("Keycloak event backfill failed (will retry)")
