"""The push path: ``POST /events`` from the Keycloak plugin.

The body is one event document (``keycloak/event-listener`` ``EventDocuments``) signed
with ``X-WMS-Signature: sha256=<hex HMAC-SHA256 of the body>`` under the shared secret.
Answers: 202 taken in (or already seen); 401 bad or missing signature (the plugin
retries: the secret may be fixed); 400 / 413 malformed or too large (the plugin skips
it; the backfill still reads the event from Keycloak); 503 the store failed (retried).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from alerting.answers import document, problem
from alerting.engine import Engine
from alerting.events import EventFormatError, from_push
from alerting.store import transient

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-WMS-Signature"


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=<hex>`` of ``body`` under ``secret`` (constant-time compare)."""
    if not header or not header.startswith("sha256=") or not header.isascii():
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.removeprefix("sha256=").strip().lower().encode())


class Intake:
    """The ``POST /events`` handler.

    Args:
        engine: where events go.
        secret: the shared HMAC key.
        max_bytes: largest body accepted.
    """

    def __init__(self, engine: Engine, secret: str, max_bytes: int) -> None:
        self._engine = engine
        self._secret = secret
        self._max = max_bytes

    async def handle(self, request: web.Request) -> web.Response:
        """Verify, parse and take in one event."""
        too_large = problem(413, "event_too_large", f"事件超过 {self._max} 字节",
                            f"an event may be at most {self._max} bytes")
        if request.content_length is not None and request.content_length > self._max:
            return too_large
        try:
            body = await request.read()  # bounded by the application's client_max_size (= max_bytes)
        except web.HTTPRequestEntityTooLarge:
            return too_large
        if not signature_valid(self._secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("event from %s refused: bad or missing signature", request.remote)
            return problem(401, "bad_signature", "事件签名无效或缺失", "the event's signature is missing or wrong")
        try:
            event = from_push(json.loads(body))
        except RecursionError:
            return problem(400, "bad_event", "事件嵌套过深", "malformed event: nested too deeply")
        except (ValueError, EventFormatError) as exc:
            return problem(400, "bad_event", f"事件格式错误:{exc}", f"malformed event: {exc}")
        try:
            result = await self._engine.ingest(event, "push")
        except SQLAlchemyError as exc:
            if not transient(exc):  # this event's data: retrying cannot help (the sender skips a 422)
                log.error("event %s cannot be stored: %s", event.key, exc)
                return problem(422, "event_unstorable", "事件无法保存,已跳过", "the event cannot be stored; skipped")
            log.exception("alert store failed while taking in %s", event.key)
            return problem(503, "store_unavailable", "告警存储暂不可用,请稍后重试",
                           "the alert store is unavailable; retry later")
        return document({"status": "duplicate" if result.duplicate else "accepted",
                         "alerts_opened": list(result.new_alerts)}, status=202)
