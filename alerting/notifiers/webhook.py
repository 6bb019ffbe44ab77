"""The generic JSON webhook: the whole alert document, signed like the Keycloak plugin's
events (``X-WMS-Signature: sha256=<hex HMAC-SHA256 of the body>``)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp

from alerting.notifiers.base import NotifierError


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``body`` keyed with ``secret`` (RFC 2104)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def json_body(payload: Any) -> bytes:
    """``payload`` as compact UTF-8 JSON (Chinese text unescaped)."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


async def post_json(session: aiohttp.ClientSession, url: str, body: bytes, timeout_seconds: float,
                    headers: dict[str, str] | None = None) -> tuple[int, str]:
    """POST a JSON ``body``; returns (status, the first 500 characters of the answer).

    Raises:
        NotifierError: the receiver could not be reached or did not answer in time.
    """
    try:
        async with session.post(url, data=body, timeout=aiohttp.ClientTimeout(total=timeout_seconds),
                                headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})}) as resp:
            return resp.status, (await resp.text(errors="replace"))[:500]
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise NotifierError(f"{type(exc).__name__}: {exc}") from exc


class WebhookNotifier:
    """POSTs ``{"type": "wmsgate.alert", "alert": {...}}``; any 2xx answer is a delivery.

    Headers: ``X-WMS-Signature`` (when a secret is set) and ``X-WMS-Alert-Id`` (a receiver
    de-duplicates on it: a retry after a lost answer sends the alert again).

    Args:
        name: the notifier's name (deliveries are tracked by it).
        url: the receiver.
        secret: HMAC key, or None to send unsigned.
        session: shared HTTP client session.
        timeout_seconds: limit of one attempt.
    """

    def __init__(self, name: str, url: str, secret: str | None, session: aiohttp.ClientSession,
                 timeout_seconds: float = 10.0) -> None:
        self.name = name
        self._url = url
        self._secret = secret
        self._session = session
        self._timeout = timeout_seconds

    async def send(self, alert: dict[str, Any]) -> None:
        """See :class:`alerting.notifiers.base.Notifier`."""
        body = json_body({"type": "wmsgate.alert", "alert": alert})
        headers = {"X-WMS-Alert-Id": alert["alert_id"]}
        if self._secret:
            headers["X-WMS-Signature"] = signature(self._secret, body)
        status, answer = await post_json(self._session, self._url, body, self._timeout, headers)
        if not 200 <= status < 300:
            raise NotifierError(f"webhook answered {status}: {answer[:200]}")
