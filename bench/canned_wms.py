"""A WMS that answers from memory: recorded answers of the demo WMS, served as fast as aiohttp can.

The demo WMS spends tens of milliseconds on a list page, so in front of it the gateway never
saturates on list endpoints and its per-process throughput there cannot be measured. This stand-in
serves the answers recorded from the demo WMS (status, content type, body) by path, whatever the
query, so the gateway (or the bare pass-through) is what saturates.

Usage: python bench/canned_wms.py --port 28098 --answers answers.json
       (answers.json: {"/api/picking/tasks": {"status": 200, "content_type": "application/json",
       "body": "<text>"}, ...}; any other path answers 200 {})
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aiohttp import web


def create_app(answers: dict[str, dict[str, object]]) -> web.Application:
    """The app serving ``answers`` by path."""
    canned = {path: (int(str(a["status"])), str(a["content_type"]), str(a["body"]).encode("utf-8"))
              for path, a in answers.items()}

    async def answer(request: web.Request) -> web.Response:
        status, content_type, body = canned.get(request.path, (200, "application/json", b"{}"))
        return web.Response(status=status, body=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def main() -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--answers", type=Path, required=True)
    args = parser.parse_args()
    answers = json.loads(args.answers.read_text(encoding="utf-8"))
    web.run_app(create_app(answers), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
