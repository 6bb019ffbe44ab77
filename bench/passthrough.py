"""A bare aiohttp reverse proxy: the yardstick the gateway is measured against in ``make bench``.

It does what any aiohttp proxy must and nothing the gateway adds: one shared keep-alive
client session to the upstream, the request line, headers and body passed on, the answer
read and relayed. No authentication, no policy, no audit.

Usage: python bench/passthrough.py --port 28099 --upstream http://127.0.0.1:28090 [--uvloop]
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                        "transfer-encoding", "upgrade", "host", "content-length"})
SESSION = web.AppKey("session", aiohttp.ClientSession)


def create_app(upstream: str) -> web.Application:
    """The pass-through app forwarding every request to ``upstream``."""
    app = web.Application()

    async def startup(app: web.Application) -> None:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
                                             auto_decompress=False)

    async def cleanup(app: web.Application) -> None:
        await app[SESSION].close()

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read() if request.body_exists else None
        async with app[SESSION].request(request.method, upstream + request.path_qs, headers=headers,
                                        data=body, allow_redirects=False) as resp:
            payload = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=resp.status, body=payload, headers=out)

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (as the gateway does when it has it)")
    args = parser.parse_args()
    loop = None
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(create_app(args.upstream.rstrip("/")), host=args.host, port=args.port, print=None, access_log=None,
                loop=loop)


if __name__ == "__main__":
    main()
