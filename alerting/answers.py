"""Error answers of the alerting service's HTTP API, in the gateway's shape:
``{"error": <code>, "reason_zh": ..., "reason_en": ...}``."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def problem(status: int, code: str, zh: str, en: str) -> web.Response:
    """A JSON error answer with a machine-readable code and zh-CN / en messages."""
    return web.json_response({"error": code, "reason_zh": zh, "reason_en": en}, status=status,
                             headers={"Cache-Control": "no-store"})


def document(value: Any, status: int = 200) -> web.Response:
    """A JSON answer (Chinese text unescaped, never cached)."""
    return web.json_response(value, status=status, headers={"Cache-Control": "no-store"},
                             dumps=lambda v: json.dumps(v, ensure_ascii=False, default=str))
