"""Attribute lookups (authorizer/authz/attributes.py) against a real local HTTP server standing in
for the WMS: cached answers, and concurrent misses on one record sharing one WMS request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import aiohttp
from aiohttp import web
from multidict import MultiDict

from authorizer.authz.attributes import AttributeResolver, LookupFailed, RequestParts
from authorizer.authz.routes import Route, RouteMap
from tests.support.local_http import serving
from wmsgate.tools import REPO

ROUTES = RouteMap.load(REPO / "config" / "routes.yaml")


def _order_route() -> tuple[Route, RequestParts]:
    match = ROUTES.match("GET", ["api", "orders", "SO1"])
    assert match is not None and match.route.lookup is not None
    return match.route, RequestParts(match.params, MultiDict())


def _wms(answer: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AbstractAsyncContextManager[str]:
    app = web.Application()
    app.router.add_get("/api/orders/{no}", answer)
    return serving(app)


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_concurrent_misses_on_one_record_share_one_wms_request() -> None:
    hits: list[str] = []

    async def test() -> None:
        gate = asyncio.Event()

        async def answer(request: web.Request) -> web.Response:
            hits.append(request.match_info["no"])
            await gate.wait()
            return web.json_response({"order_no": "SO1", "warehouse": "HF", "channel": "taobao", "order_type": "b2c"})

        route, parts = _order_route()
        async with _wms(answer) as url, aiohttp.ClientSession() as session:
            resolver = AttributeResolver(session, url, {}, cache_seconds=60)
            waiting = [asyncio.create_task(resolver.resolve(route, parts)) for _ in range(20)]
            await asyncio.sleep(0.2)
            waiting[0].cancel()  # the first caller goes away: the others still get the answer
            gate.set()
            results = await asyncio.gather(*waiting[1:])
            assert {tuple(r.attributes["warehouse"]) for r in results} == {("HF",)}
            assert hits == ["SO1"]
            again = await resolver.resolve(route, parts)  # from the cache
            assert again.attributes["channel"] == ["taobao"] and hits == ["SO1"]

    _run(test)


def test_a_failed_shared_lookup_fails_every_waiter_and_the_next_one_asks_again() -> None:
    hits: list[int] = []

    async def test() -> None:
        async def answer(_: web.Request) -> web.Response:
            hits.append(1)
            await asyncio.sleep(0.1)
            if len(hits) == 1:
                return web.Response(status=500)
            return web.json_response({"warehouse": "SH", "channel": "jd", "order_type": "b2c"})

        route, parts = _order_route()
        async with _wms(answer) as url, aiohttp.ClientSession() as session:
            resolver = AttributeResolver(session, url, {}, cache_seconds=60)
            outcomes = await asyncio.gather(*(resolver.resolve(route, parts) for _ in range(5)),
                                            return_exceptions=True)
            assert all(isinstance(o, LookupFailed) for o in outcomes) and len(hits) == 1
            after = await resolver.resolve(route, parts)  # a failure is not cached
            assert after.attributes["warehouse"] == ["SH"] and len(hits) == 2

    _run(test)


def test_without_a_cache_every_request_asks_the_wms() -> None:
    hits: list[int] = []

    async def test() -> None:
        async def answer(_: web.Request) -> web.Response:
            hits.append(1)
            return web.json_response({"warehouse": "HF", "channel": "jd", "order_type": "b2c"})

        route, parts = _order_route()
        async with _wms(answer) as url, aiohttp.ClientSession() as session:
            resolver = AttributeResolver(session, url, {}, cache_seconds=0)
            await asyncio.gather(*(resolver.resolve(route, parts) for _ in range(3)))
            assert len(hits) == 3

    _run(test)
