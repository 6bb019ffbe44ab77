"""The Keycloak admin-event watcher's reading: only events from the checkpoint on, every page of
a burst, late-stored events inside the lookback, none twice. Keycloak itself is faked here (its
admin-events query semantics: ``dateFrom`` inclusive epoch ms, ``direction``, ``first``/``max``);
the real one's answers are checked in tests/integration/test_access_changes.py
(``test_keycloak_answers_the_admin_event_query_the_watcher_relies_on``, and case 5 end to end)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from authorizer.iam.access import AdminEventWatcher


class FakeKeycloak:
    """Stored admin events, answered as Keycloak's ``GET /admin/realms/{realm}/admin-events``."""

    def __init__(self, honours_first: bool = True) -> None:
        self.events: list[dict[str, Any]] = []
        self.queries: list[dict[str, Any]] = []
        self.answered: list[int] = []  # how many events each answer held
        self.honours_first = honours_first

    def add(self, at: int, user: str, revoking: bool) -> None:
        self.events.append({"id": f"e{len(self.events)}", "time": at, "resourceType": "USER",
                            "operationType": "UPDATE", "resourcePath": f"users/{user}",
                            "representation": json.dumps({"enabled": not revoking})})

    async def a_get_admin_events(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        self.queries.append(query)
        since = int(query["dateFrom"])
        chosen = sorted((e for e in self.events if e["time"] >= since), key=lambda e: e["time"],
                        reverse=query.get("direction") != "asc")
        first = int(query["first"]) if self.honours_first else 0
        page = chosen[first:first + int(query["max"])]
        self.answered.append(len(page))
        return page


class Service:
    def __init__(self, kc: FakeKeycloak) -> None:
        self.kc = kc

    def _kc(self) -> FakeKeycloak:
        return self.kc


class Revocations:
    def __init__(self) -> None:
        self.revoked: list[str] = []

    async def revoke(self, user_id: str, reason: str, revoked_by: str, at: float | None = None) -> int:
        self.revoked.append(user_id)
        return int(at or 0) + 1


class Cache:
    def __init__(self) -> None:
        self.noted: dict[str, int] = {}

    def note(self, user_id: str, not_before: int) -> None:
        self.noted[user_id] = not_before


def _watcher(kc: FakeKeycloak) -> tuple[AdminEventWatcher, Revocations, Cache]:
    revocations, cache = Revocations(), Cache()
    watcher = AdminEventWatcher(Service(kc), revocations, cache)  # type: ignore[arg-type]
    return watcher, revocations, cache


def test_a_burst_larger_than_a_page_is_read_whole_and_nothing_twice() -> None:
    kc = FakeKeycloak()
    watcher, revocations, cache = _watcher(kc)
    start = watcher._checkpoint_ms
    kc.add(start - 60_000, "old-user", revoking=True)  # before the watcher started: not its business
    for n in range(2 * AdminEventWatcher.PAGE + 50):
        kc.add(start + 1 + n, f"u{n}", revoking=n in (3, AdminEventWatcher.PAGE + 7, 2 * AdminEventWatcher.PAGE + 40))
    assert asyncio.run(watcher.poll()) == 3
    assert revocations.revoked == ["u3", f"u{AdminEventWatcher.PAGE + 7}", f"u{2 * AdminEventWatcher.PAGE + 40}"]
    assert set(cache.noted) == set(revocations.revoked)
    assert all(q["direction"] == "asc" and int(q["dateFrom"]) >= start - AdminEventWatcher.LOOKBACK_MS
               for q in kc.queries)
    assert asyncio.run(watcher.poll()) == 0 and len(revocations.revoked) == 3  # asked again: none twice


def test_an_event_stored_late_with_an_earlier_time_is_still_seen_once() -> None:
    kc = FakeKeycloak()
    watcher, revocations, _ = _watcher(kc)
    start = watcher._checkpoint_ms
    kc.add(start + 5_000, "first", revoking=True)
    assert asyncio.run(watcher.poll()) == 1
    kc.add(start + 4_000, "late", revoking=True)  # another transaction committed after the poll
    assert asyncio.run(watcher.poll()) == 1
    assert asyncio.run(watcher.poll()) == 0
    assert revocations.revoked == ["first", "late"]


def test_a_failed_revocation_is_retried_on_the_next_poll() -> None:
    kc = FakeKeycloak()
    watcher, revocations, _ = _watcher(kc)
    kc.add(watcher._checkpoint_ms + 10, "flaky", revoking=True)
    calls = {"n": 0}
    real = revocations.revoke

    async def fails_once(user_id: str, reason: str, revoked_by: str, at: float | None = None) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("store down")
        return await real(user_id, reason, revoked_by, at)

    revocations.revoke = fails_once  # type: ignore[method-assign]
    try:
        asyncio.run(watcher.poll())
    except ConnectionError:
        pass
    else:
        raise AssertionError("the store failure should have surfaced")
    assert asyncio.run(watcher.poll()) == 1 and revocations.revoked == ["flaky"]


def test_once_settled_a_quiet_realm_is_not_read_again() -> None:
    """After a burst the lookback window is asked again only while it settles; then a poll gets
    the checkpoint's own event, not the whole burst every second."""
    kc = FakeKeycloak()
    watcher, _, _ = _watcher(kc)
    start = watcher._checkpoint_ms
    for n in range(3 * AdminEventWatcher.PAGE):
        kc.add(start + 1 + n // 10, f"u{n}", revoking=False)  # 300 events within 30 ms
    asyncio.run(watcher.poll())
    watcher._settle_until = 0.0  # LOOKBACK_MS of real time have passed
    kc.answered.clear()
    assert asyncio.run(watcher.poll()) == 0
    assert kc.answered == [10]  # the events of the checkpoint's millisecond only
    assert int(kc.queries[-1]["dateFrom"]) == watcher._checkpoint_ms


def test_a_keycloak_that_ignores_first_is_an_error_not_an_endless_loop() -> None:
    kc = FakeKeycloak(honours_first=False)
    watcher, _, _ = _watcher(kc)
    for n in range(AdminEventWatcher.PAGE + 1):
        kc.add(watcher._checkpoint_ms + 1 + n, f"u{n}", revoking=False)
    try:
        asyncio.run(watcher.poll())
    except RuntimeError as exc:
        assert "same page" in str(exc)
    else:
        raise AssertionError("a repeated page must stop the poll")
    assert len(kc.queries) == 2
