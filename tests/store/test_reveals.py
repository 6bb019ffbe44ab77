"""Time-boxed reveals in the shared store (SQLite, or PostgreSQL with WMSGATE_TEST_DB): another
proxy process sees a reveal after its refresh, and a reveal stops showing when it lapses."""

from __future__ import annotations

import asyncio
import time

from authorizer.db import create_schema, make_engine
from authorizer.enforce.reveals import RevealAsk, RevealCache, RevealStore, place_of


def test_a_reveal_shows_in_every_process_until_it_lapses(store_url: str) -> None:
    async def run() -> None:
        engine = make_engine(store_url)
        await create_schema(engine)
        here, there = RevealCache(RevealStore(engine)), RevealCache(RevealStore(engine))
        hf = {"warehouse": ["HF"], "channel": ["jd"]}
        place = place_of(hf)
        ask = RevealAsk("u-sup", "supervisor", "orders", "SO1", "customer_phone", "客户投诉", "d" * 32, place)
        reveal = await here.store.create(ask, seconds=2)
        here.note(reveal)
        now = int(time.time() * 1000)
        assert [r.reveal_id for r in here.fields("u-sup", "orders", "SO1", hf, now)] == [reveal.reveal_id]
        assert there.fields("u-sup", "orders", "SO1", hf, now) == []  # not refreshed yet
        await there.refresh()
        assert [r.field for r in there.fields("u-sup", "orders", "SO1", hf, now)] == ["customer_phone"]
        assert there.fields("u-other", "orders", "SO1", hf, now) == []
        assert there.fields("u-sup", "orders", "SO2", hf, now) == []
        sh = {"warehouse": ["SH"], "channel": ["jd"]}
        assert there.fields("u-sup", "orders", "SO1", sh, now) == []  # another tenant's SO1
        assert there.fields("u-sup", "orders", "SO1", hf, reveal.until_ms) == []  # lapsed, even before a refresh
        await asyncio.sleep(2.1)
        await there.refresh()
        assert there.fields("u-sup", "orders", "SO1", hf, reveal.until_ms - 1) == []  # gone from the live set
        assert await there.store.live(reveal.created_ms) != []  # never deleted: evidence of who read what
        await engine.dispose()

    asyncio.run(run())
