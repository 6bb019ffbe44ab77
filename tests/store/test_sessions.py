"""Browser sessions and pending logins in the shared store (SQLite, or PostgreSQL with WMSGATE_TEST_DB)."""

from __future__ import annotations

import asyncio

from sqlalchemy import update

from authorizer.authn.sessions import SessionStore, Tokens, browser_sessions, now_ms, pending_logins
from authorizer.db import create_schema, make_engine


def _tokens(tag: str) -> Tokens:
    at = now_ms()
    return Tokens(f"access-{tag}", f"refresh-{tag}", f"id-{tag}", at + 300_000, at + 1_800_000)


def test_a_session_is_found_by_its_cookie_rotates_and_ends(store_url: str) -> None:
    async def run() -> None:
        engine = make_engine(store_url)
        await create_schema(engine)
        store = SessionStore(engine, idle_seconds=60, grace_seconds=30)
        session, cookie = await store.create("u1", "picker.hf", "sid-1", _tokens("a"))
        found = await store.get(cookie)
        assert found is not None and found.username == "picker.hf" and found.tokens.access_token == "access-a"
        assert await store.get("not-a-cookie") is None
        rotated = await store.rotate(found, _tokens("b"))
        assert rotated is not None
        new_session, new_cookie = rotated
        assert new_cookie != cookie and new_session.csrf == session.csrf
        via_old = await store.get(cookie)  # in flight with the old id: within the grace period
        assert via_old is not None and via_old.tokens.access_token == "access-b"
        assert await store.rotate(found, _tokens("c")) is None  # rotated already: the first one wins
        assert await store.end_by_sid("sid-1") == 1
        assert await store.get(new_cookie) is None and await store.get(cookie) is None
        await engine.dispose()

    asyncio.run(run())


def test_idle_sessions_end_and_users_can_be_logged_out_everywhere(store_url: str) -> None:
    async def run() -> None:
        engine = make_engine(store_url)
        await create_schema(engine)
        store = SessionStore(engine, idle_seconds=60)
        _, idle = await store.create("u2", "keeper.hf", "sid-2", _tokens("a"))
        _, other = await store.create("u2", "keeper.hf", "sid-3", _tokens("b"))
        async with engine.begin() as conn:
            await conn.execute(update(browser_sessions).where(browser_sessions.c.sid == "sid-2")
                               .values(last_seen_ms=now_ms() - 61_000))
        assert await store.get(idle) is None
        assert await store.get(other) is not None
        assert await store.end_by_user("u2") == 1
        assert await store.get(other) is None
        await engine.dispose()

    asyncio.run(run())


def test_a_pending_login_is_used_once_and_only_by_the_browser_that_started_it(store_url: str) -> None:
    async def run() -> None:
        engine = make_engine(store_url)
        await create_schema(engine)
        store = SessionStore(engine, login_seconds=600)
        login, binding = await store.begin_login("/ui/orders", "mfa", "v" * 64)
        assert await store.finish_login(login.state, "another-browser") is None  # login CSRF
        login2, binding2 = await store.begin_login("/", "", "w" * 64)
        done = await store.finish_login(login2.state, binding2)
        assert done is not None and done.return_to == "/" and done.code_verifier == "w" * 64
        assert await store.finish_login(login2.state, binding2) is None  # once
        login3, binding3 = await store.begin_login("/", "", "x" * 64)
        async with engine.begin() as conn:
            await conn.execute(update(pending_logins).where(pending_logins.c.state == login3.state)
                               .values(created_ms=now_ms() - 601_000))
        assert await store.finish_login(login3.state, binding3) is None  # too late
        assert binding  # the first login's binding was never presented
        await engine.dispose()

    asyncio.run(run())
