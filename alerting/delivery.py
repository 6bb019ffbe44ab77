"""The delivery worker: sends queued alert deliveries, retrying with exponential backoff.

A delivery row stays ``pending`` until its notifier accepts the alert; a failure only
moves its next attempt later (``retry_initial_seconds`` doubling up to
``retry_max_seconds``), so an alert is never dropped because a channel was down. A
delivery whose notifier is no longer configured waits too (at the longest interval) and
is visible in the alert's deliveries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from sqlalchemy.exc import SQLAlchemyError

from alerting.notifiers import Notifier, NotifierError
from alerting.store import AlertStore, now_ms

log = logging.getLogger(__name__)


def backoff_ms(attempts: int, initial_seconds: float, max_seconds: float) -> int:
    """Delay before the next attempt after ``attempts`` failures, ms (``initial * 2**(attempts-1)``, capped)."""
    exponent = min(max(0, attempts - 1), 40)  # 2**40 s is far past any cap: no float overflow
    return int(min(max_seconds, initial_seconds * (2 ** exponent)) * 1000)


class DeliveryWorker:
    """Sends due deliveries; :meth:`wake` makes it look at once (a new alert).

    Args:
        store: the outbox.
        notifiers: configured notifiers by name.
        retry_initial_seconds: first retry delay, seconds.
        retry_max_seconds: longest retry delay, seconds.
    """

    def __init__(self, store: AlertStore, notifiers: Mapping[str, Notifier], retry_initial_seconds: float = 1.0,
                 retry_max_seconds: float = 300.0) -> None:
        self._store = store
        self._notifiers = notifiers
        self._initial = retry_initial_seconds
        self._max = retry_max_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due deliveries now."""
        self._wake.set()

    async def run_once(self) -> int:
        """Attempt every due delivery (concurrently); returns how many were attempted."""
        due = await self._store.due_deliveries(now_ms())
        await asyncio.gather(*(self._attempt(row) for row in due))
        return len(due)

    async def _attempt(self, row: dict) -> None:
        attempts = row["attempts"] + 1
        notifier = self._notifiers.get(row["notifier"])
        alert = await self._store.alert(row["alert_id"])
        try:
            if notifier is None:
                raise NotifierError(f"notifier {row['notifier']!r} is not configured; waiting for it to come back")
            if alert is None:
                raise NotifierError(f"alert {row['alert_id']} is missing from the store")
            await notifier.send(alert)
        except NotifierError as exc:
            delay = backoff_ms(attempts, self._initial, self._max) if notifier else int(self._max * 1000)
            log.warning("alert %s via %s: attempt %d failed (%s); next in %.1fs", row["alert_id"], row["notifier"],
                        attempts, exc, delay / 1000)
            await self._store.delivery_failed(row["delivery_id"], str(exc), now_ms() + delay)
            return
        except Exception as exc:
            log.exception("alert %s via %s: unexpected failure", row["alert_id"], row["notifier"])
            delay = backoff_ms(attempts, self._initial, self._max)
            await self._store.delivery_failed(row["delivery_id"], f"{type(exc).__name__}: {exc}", now_ms() + delay)
            return
        await self._store.delivered(row["delivery_id"])
        log.info("alert %s delivered via %s", row["alert_id"], row["notifier"])

    async def run_forever(self) -> None:
        """Deliver until cancelled; sleeps until the next due attempt or a wake-up."""
        while True:
            try:
                await self.run_once()
                next_due = await self._store.next_due_ms()
            except SQLAlchemyError:
                log.exception("alert store unavailable; deliveries wait")
                next_due = now_ms() + 2000
            except Exception:
                log.exception("delivery pass failed unexpectedly; retrying")
                next_due = now_ms() + 2000
            wait = 5.0 if next_due is None else max(0.05, min(5.0, (next_due - now_ms()) / 1000))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass
            self._wake.clear()
