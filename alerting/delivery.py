"""The delivery worker: sends queued alert deliveries, retrying with exponential backoff.

A delivery row stays ``pending`` until its notifier accepts the alert; a failure only
moves its next attempt later (``retry_initial_seconds`` doubling up to
``retry_max_seconds``), so an alert is never dropped because a channel was down. A
delivery whose notifier is no longer configured waits too (at the longest interval) and
is visible in the alert's deliveries.

Group robots (DingTalk, WeCom, Slack webhooks: notifiers with ``send_many``) are paced
(:class:`Pacing`): per robot and rule, one message per window: the first alert of a rule
goes at once and what follows within the window goes as one digest when it ends; and no
robot gets more than its service's rate (DingTalk and WeCom: 20 messages a minute).
Deliveries held by pacing wait (no attempt is counted); none is dropped. Alerts still open
(unacknowledged) ``escalate_after_seconds`` after they were raised are escalated once to
the ``escalate_to`` notifiers, paced the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from alerting.config import Pacing
from alerting.notifiers import Notifier, NotifierError
from alerting.notifiers.base import escalated
from alerting.store import ESCALATION, AlertStore, now_ms

log = logging.getLogger(__name__)


def backoff_ms(attempts: int, initial_seconds: float, max_seconds: float) -> int:
    """Delay before the next attempt after ``attempts`` failures, ms (``initial * 2**(attempts-1)``, capped)."""
    exponent = min(max(0, attempts - 1), 40)  # 2**40 s is far past any cap: no float overflow
    return int(min(max_seconds, initial_seconds * (2 ** exponent)) * 1000)


@dataclass
class _RobotClock:
    """In memory: when each rule's window of one robot ends, and its recent messages (ms)."""

    window_end: dict[tuple[str, str], int] = field(default_factory=dict)
    sent: deque[int] = field(default_factory=deque)


class DeliveryWorker:
    """Sends due deliveries; :meth:`wake` makes it look at once (a new alert).

    Args:
        store: the outbox.
        notifiers: configured notifiers by name.
        retry_initial_seconds: first retry delay, seconds.
        retry_max_seconds: longest retry delay, seconds.
        pacing: robot pacing and escalation (default: :class:`Pacing`'s).
        decorate: adds to an alert what only its messages carry (a "not me" link), or None.
    """

    def __init__(self, store: AlertStore, notifiers: Mapping[str, Notifier], retry_initial_seconds: float = 1.0,
                 retry_max_seconds: float = 300.0, pacing: Pacing | None = None,
                 decorate: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self._decorate = decorate
        self._pacing = pacing or Pacing()
        self._clocks: dict[str, _RobotClock] = {}
        self._store = store
        self._notifiers = notifiers
        self._initial = retry_initial_seconds
        self._max = retry_max_seconds
        self._wake = asyncio.Event()

    async def _alert(self, alert_id: str) -> dict[str, Any] | None:
        """The alert as its messages show it (decorated), or None when the store has none."""
        alert = await self._store.alert(alert_id)
        return alert if alert is None or self._decorate is None else self._decorate(alert)

    def wake(self) -> None:
        """Look for due deliveries now."""
        self._wake.set()

    async def run_once(self) -> int:
        """Escalate what is due, then attempt every due delivery (concurrently; robots paced);
        returns how many deliveries were due."""
        pacing = self._pacing
        if pacing.escalate_after_seconds is not None:
            to = list(pacing.escalate_to or self._notifiers)
            await self._store.escalate_due(now_ms() - int(pacing.escalate_after_seconds * 1000), to)
        due = await self._store.due_deliveries(now_ms(), limit=500)
        robots: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        single = []
        alerts: dict[str, dict[str, Any] | None] = {}
        for row in due:
            notifier = self._notifiers.get(row["notifier"])
            if notifier is not None and hasattr(notifier, "send_many"):
                if row["alert_id"] not in alerts:  # one read per alert, however many deliveries it has
                    alerts[row["alert_id"]] = await self._alert(row["alert_id"])
                alert = alerts[row["alert_id"]]
                rule = alert["rule"] if alert is not None else ""
                robots.setdefault((row["notifier"], rule, row.get("purpose") or ""), []).append(row)
            else:
                single.append(row)
        await asyncio.gather(*(self._attempt(row) for row in single),
                             *(self._attempt_robot(key, rows, alerts) for key, rows in robots.items()))
        return len(due)

    async def _attempt_robot(self, key: tuple[str, str, str], rows: list[dict[str, Any]],
                             alerts: Mapping[str, dict[str, Any] | None]) -> None:
        """One robot, one rule (and purpose): send the due deliveries as one message when its
        window and rate allow, else hold them until they do."""
        name, rule, purpose = key
        clock = self._clocks.setdefault(name, _RobotClock())
        now = now_ms()
        while clock.sent and clock.sent[0] <= now - 60_000:
            clock.sent.popleft()
        ids = [row["delivery_id"] for row in rows]
        window_end = clock.window_end.get((rule, purpose), 0)
        if now < window_end:  # a message of this rule went out lately: the rest waits for the digest
            await self._store.postpone(ids, window_end)
            return
        if len(clock.sent) >= self._pacing.per_minute:  # the robot's rate: wait for a free slot
            await self._store.postpone(ids, clock.sent[0] + 60_000)
            return
        clock.sent.append(now)  # the slot is taken before sending: concurrent groups see it
        docs = [alerts.get(row["alert_id"]) for row in rows]
        found = [escalated(d) if purpose == ESCALATION else d for d in docs if d is not None]
        notifier = self._notifiers[name]
        try:
            if len(found) != len(rows):
                raise NotifierError("an alert is missing from the store")
            await notifier.send_many(found, purpose == ESCALATION)  # type: ignore[attr-defined]
        except NotifierError as exc:
            log.warning("alerts via %s: a message of rule %s failed (%s)", name, rule, exc)
            clock.sent.remove(now)
            await self._robot_failed(rows, exc, now)
            return
        except Exception as exc:
            log.exception("alerts via %s: a message of rule %s failed unexpectedly", name, rule)
            clock.sent.remove(now)
            await self._robot_failed(rows, exc, now)
            return
        clock.window_end[(rule, purpose)] = now + int(self._pacing.window_seconds * 1000)
        for row in rows:
            await self._store.delivered(row["delivery_id"])
        log.info("%d alert(s) of rule %s delivered via %s in one message", len(rows), rule, name)

    async def _robot_failed(self, rows: list[dict[str, Any]], exc: Exception, now: int) -> None:
        """Every delivery of a failed robot message waits for its next attempt (backoff)."""
        for row in rows:
            delay = backoff_ms(row["attempts"] + 1, self._initial, self._max)
            await self._store.delivery_failed(row["delivery_id"], f"{type(exc).__name__}: {exc}", now + delay)

    async def _attempt(self, row: dict) -> None:
        attempts = row["attempts"] + 1
        notifier = self._notifiers.get(row["notifier"])
        alert = await self._alert(row["alert_id"])
        try:
            if notifier is None:
                raise NotifierError(f"notifier {row['notifier']!r} is not configured; waiting for it to come back")
            if alert is None:
                raise NotifierError(f"alert {row['alert_id']} is missing from the store")
            await notifier.send(escalated(alert) if row.get("purpose") == ESCALATION else alert)
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
