"""Forwarding an authorized request to the WMS and relaying its answer.

The WMS receives only what the gateway vouches for: hop-by-hop headers, the
client's credentials and cookies and any client-sent identity or forwarding
header are dropped; the gateway sets the identity headers and credentials from
configuration and rebuilds ``X-Forwarded-*``. Bodies are streamed unless the
decision needs to read them (attributes) or rewrite the answer (mask, filter).
"""

from __future__ import annotations

import asyncio
import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from authorizer.config import CredentialSettings, UpstreamSettings
from authorizer.identity import Principal
from proxy.responses import Refusal, upstream_failed

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "proxy-connection"})
_NEVER_FORWARD = HOP_BY_HOP | {"host", "authorization", "cookie", "content-length", "accept-encoding", "expect"}
_NEVER_RETURN = HOP_BY_HOP | {"content-length", "content-encoding", "set-cookie"}
_CHUNK = 64 * 1024

# (raw body, content type without parameters) -> (new body, content type, facts for the audit record)
Transform = Callable[[bytes, str], tuple[bytes, str, dict[str, Any]]]


@dataclass
class UpstreamResult:
    """What the WMS answered: its status and how long it took (milliseconds)."""

    status: int
    ms: float
    detail: dict[str, Any]


def _read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read credential file {path}: {exc}") from exc


class UpstreamIdentity:
    """The identity headers and credentials the WMS receives for a person.

    Args:
        settings: the upstream settings (header templates, credential files). Secret
            files are read once here.

    Raises:
        ValueError: a credential file cannot be read.
    """

    def __init__(self, settings: UpstreamSettings) -> None:
        self._templates = dict(settings.identity_headers)
        self._static: dict[str, str] = {}
        self._per_warehouse: dict[str, dict[str, str]] = {}
        for cred in settings.credentials:
            self._load(cred)

    def _load(self, cred: CredentialSettings) -> None:
        if cred.file is not None:
            self._static[cred.header] = _read_secret(cred.file)
        else:
            self._per_warehouse[cred.header] = {wh: _read_secret(p) for wh, p in cred.per_warehouse.items()}

    def headers(self, principal: Principal, warehouse: str | None) -> dict[str, str]:
        """Headers to add for ``principal``; ``warehouse`` picks per-warehouse credentials.

        Raises:
            Refusal: a per-warehouse credential is configured but the request does
                not name exactly one warehouse that has one (403 ``no_upstream_credential``).
        """
        values = {"username": principal.username, "user_id": principal.user_id, "roles": ",".join(principal.roles)}
        out = {name: template.format(**values) for name, template in self._templates.items()}
        out.update(self._static)
        for header, secrets in self._per_warehouse.items():
            if warehouse is None or warehouse not in secrets:
                raise Refusal(403, "no_upstream_credential", "此请求无法确定唯一仓库,无法选择 WMS 凭据",
                              "the request does not name one warehouse with a WMS credential")
            out[header] = secrets[warehouse]
        return out


def upstream_request_headers(request: web.Request, strip: frozenset[str], added: dict[str, str],
                             client_ip: str) -> CIMultiDict[str]:
    """The headers sent to the WMS.

    Args:
        request: the client's request.
        strip: lower-cased header names removed besides hop-by-hop ones (identity, forwarding).
        added: identity and credential headers set by the gateway.
        client_ip: the real client address (rebuilt ``X-Forwarded-For``).
    """
    connection_listed = {t.strip().lower() for v in request.headers.getall("Connection", []) for t in v.split(",")}
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in _NEVER_FORWARD or lower in strip or lower in connection_listed:
            continue
        headers.add(name, value)
    headers["X-Forwarded-For"] = client_ip
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    if request.content_length is not None:
        headers["Content-Length"] = str(request.content_length)
    for name, value in added.items():
        headers[name] = value
    return headers


def _response_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    connection_listed = {t.strip().lower() for v in upstream.getall("Connection", []) for t in v.split(",")}
    return CIMultiDict((k, v) for k, v in upstream.items()
                       if k.lower() not in _NEVER_RETURN and k.lower() not in connection_listed)


class Forwarder:
    """Sends requests to the WMS over the app's shared session.

    Args:
        session: the app's shared aiohttp session.
        settings: upstream URL, timeouts and size limits.
    """

    def __init__(self, session: aiohttp.ClientSession, settings: UpstreamSettings) -> None:
        self._session = session
        self._base = settings.url
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
        self._max_transform = settings.max_transform_bytes

    async def forward(self, request: web.Request, path_and_query: str, headers: CIMultiDict[str],
                      body: bytes | None, transform: Transform | None,
                      extra_headers: dict[str, str]) -> tuple[web.StreamResponse, UpstreamResult]:
        """Send the request and relay the answer.

        Args:
            request: the client's request (its body is streamed when ``body`` is None).
            path_and_query: raw path plus ``?query`` to request on the WMS.
            headers: headers for the WMS (see :func:`upstream_request_headers`).
            body: the already-read body, or None to stream it.
            transform: rewrites a 200 answer (JSON or CSV) and returns facts for the
                audit record; None streams the answer untouched.
            extra_headers: headers added to the client's answer.

        Returns:
            The prepared (and, when streamed, completed) response and the upstream result.

        Raises:
            Refusal: the WMS is unreachable (502), too slow (504), or its answer cannot
                be transformed as the decision requires (502).
        """
        data: Any = body
        if body is None and request.body_exists:
            data = request.content
        started = time.perf_counter()
        try:
            upstream = await self._session.request(request.method, self._base + path_and_query, headers=headers,
                                                   data=data, timeout=self._timeout, allow_redirects=False)
        except asyncio.TimeoutError:
            raise upstream_failed(timeout=True) from None
        except aiohttp.ClientError:
            raise upstream_failed(timeout=False) from None
        try:
            response_headers = _response_headers(upstream.headers)
            response_headers.update(extra_headers)
            if transform is not None and upstream.status == 200:
                return await self._transformed(upstream, response_headers, transform, started)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=response_headers)
            if upstream.content_length is not None and "Content-Encoding" not in upstream.headers:
                response.content_length = upstream.content_length
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_chunked(_CHUNK):
                    await response.write(chunk)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                # Headers are already sent; cut the connection so the client sees a broken answer.
                if request.transport is not None:
                    request.transport.close()
                return response, UpstreamResult(upstream.status, (time.perf_counter() - started) * 1000,
                                                 {"upstream_body": "interrupted"})
            await response.write_eof()
            return response, UpstreamResult(upstream.status, (time.perf_counter() - started) * 1000, {})
        finally:
            upstream.release()

    async def _transformed(self, upstream: aiohttp.ClientResponse, headers: CIMultiDict[str], transform: Transform,
                           started: float) -> tuple[web.StreamResponse, UpstreamResult]:
        try:
            chunks, size = [], 0
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > self._max_transform:
                    raise ValueError("answer too large to filter")
                chunks.append(chunk)
            body, content_type, detail = transform(b"".join(chunks), upstream.content_type)
        except (ValueError, UnicodeDecodeError, RecursionError, csv.Error, aiohttp.ClientError,
                asyncio.TimeoutError) as exc:
            raise Refusal(502, "response_not_enforceable", "无法对 WMS 的响应执行脱敏或过滤,已拒绝",
                          f"the WMS answer could not be masked or filtered as policy requires ({exc})") from None
        ms = (time.perf_counter() - started) * 1000
        headers.pop("Content-Type", None)
        response = web.Response(status=200, body=body, content_type=content_type, charset="utf-8", headers=headers)
        return response, UpstreamResult(200, ms, detail)
