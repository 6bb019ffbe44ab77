"""Forwarding an authorized request to the WMS and relaying its answer.

The WMS receives only what the gateway vouches for: hop-by-hop headers, the
client's credentials and cookies and any client-sent identity or forwarding
header are dropped; the gateway sets the identity headers and credentials from
configuration and rebuilds ``X-Forwarded-*``. Bodies are streamed unless the
decision needs to read them (attributes) or rewrite the answer (mask, filter).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from authorizer.config import UpstreamSettings
from authorizer.enforce.xlsx import XLSX
from proxy import answer_json
from proxy.responses import refusal, upstream_failed
from proxy.upstream_answer import HOP_BY_HOP, AnswerConventions, BodyOutcome, LinkTarget, upstream_error

_NEVER_FORWARD = HOP_BY_HOP | {"host", "authorization", "cookie", "content-length", "accept-encoding", "expect"}
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Rewrite:
    """What a decision requires of the WMS's answer (row filter, masks).

    Attributes:
        json: rewrites a parsed JSON answer in place, given the status the answer really
            has (a failure reported inside a 200 body counts as that failure); returns
            facts for the audit record.
        text: rewrites a CSV, HTML or XLSX answer ``(body, content type, status) -> (body,
            facts)``, raising ValueError when it cannot; None when the route has no such answers.
    """

    json: Callable[[Any, int], dict[str, Any]]
    text: Callable[[bytes, str, int], tuple[bytes, dict[str, Any]]] | None = None


@dataclass
class UpstreamResult:
    """What the WMS answered: its status and how long it took (milliseconds)."""

    status: int
    ms: float
    detail: dict[str, Any]


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


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


@dataclass(frozen=True)
class Outbound:
    """The request as the WMS gets it.

    Attributes:
        path_and_query: raw path plus ``?query`` to request on the WMS.
        headers: headers for the WMS (see :func:`upstream_request_headers`).
        body: the already-read body, or None to stream the client's.
    """

    path_and_query: str
    headers: CIMultiDict[str]
    body: bytes | None = None


@dataclass(frozen=True)
class AnswerPlan:
    """What the client's answer gets.

    Attributes:
        rewrite: what the decision requires of the answer (any status); None streams answers
            that the conventions need not read.
        extra_headers: headers added to the client's answer (``X-Decision-Id``).
        links: the gateway's origin and own query parameters (``warehouse=SH``) that rewritten
            WMS links get, so following one stays on the gateway and in the same tenant.
    """

    rewrite: Rewrite | None
    extra_headers: dict[str, str]
    links: LinkTarget



class Forwarder:
    """Sends requests to the WMS over the app's shared session and relays its answers
    made safe by the WMS's answer conventions (:mod:`proxy.upstream_answer`).

    Args:
        session: the app's shared aiohttp session.
        settings: upstream URL, timeouts, size limits and answer conventions.
    """

    def __init__(self, session: aiohttp.ClientSession, settings: UpstreamSettings) -> None:
        self._session = session
        self._base = settings.url
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
        self._max_transform = settings.max_transform_bytes
        self.conventions = AnswerConventions(settings.answers, settings.url)

    async def forward(self, request: web.Request, outbound: Outbound,
                      plan: AnswerPlan) -> tuple[web.StreamResponse, UpstreamResult]:
        """Send the request and relay the answer.

        A 5xx answer's body never reaches the client (it may be a debug page carrying
        credentials): the gateway answers with its own error of the same status. Banner
        headers are dropped and WMS links rewritten to ``public_origin``.

        Args:
            request: the client's request (its body is streamed when ``outbound.body`` is None).
            outbound: what is sent to the WMS (:class:`Outbound`).
            plan: what the answer gets (:class:`AnswerPlan`).

        Returns:
            The prepared (and, when streamed, completed) response and the upstream result
            (its ``status`` is the real outcome: a failure reported in a 200 body counts).

        Raises:
            Refusal: the WMS is unreachable (502), too slow (504), or its answer cannot
                be rewritten as the decision requires (502).
            UpstreamFailure: the WMS answered 5xx (or, when the decision needs a rewrite,
                a 4xx body that cannot be read); the client gets the gateway's own error.
        """
        path_and_query, headers, body = outbound.path_and_query, outbound.headers, outbound.body
        rewrite, extra_headers, links = plan.rewrite, plan.extra_headers, plan.links
        data: Any = body
        if body is None and request.body_exists:
            data = request.content
        started = time.perf_counter()
        try:
            upstream = await self._session.request(request.method, self._base + path_and_query, headers=headers,
                                                   data=data, timeout=self._timeout, allow_redirects=False)
        except TimeoutError:
            raise upstream_failed(timeout=True) from None
        except aiohttp.ClientError:
            raise upstream_failed(timeout=False) from None
        try:
            if upstream.status >= 500:
                await self._drain(upstream)
                raise upstream_error(upstream.status, (time.perf_counter() - started) * 1000,
                                     self.conventions.replaced_headers(upstream.headers))
            response_headers = self.conventions.response_headers(upstream.headers, links)
            response_headers.update(extra_headers)
            if rewrite is not None:
                return await self._rewritten(upstream, response_headers, rewrite, started, links)
            if self._conventions_read(upstream):
                return await self._inspected(request, upstream, response_headers, started, links)
            return await self._streamed(request, upstream, response_headers, started)
        finally:
            upstream.release()

    def _conventions_read(self, upstream: aiohttp.ClientResponse) -> bool:
        """True when an answer no obligation touches is still read for the conventions (links,
        body status): a JSON answer not declared larger than the rewrite bound."""
        length = upstream.content_length
        return (self.conventions.reads_json and _is_json(upstream.content_type)
                and (length is None or length <= self._max_transform))

    async def _inspected(self, request: web.Request, upstream: aiohttp.ClientResponse, headers: CIMultiDict[str],
                         started: float, links: LinkTarget) -> tuple[web.StreamResponse, UpstreamResult]:
        """A JSON answer no obligation touches, read for the conventions; one that turns out
        larger than the rewrite bound (chunked) is relayed as it comes, prefix first."""
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                chunks.append(chunk)
                size += len(chunk)
                if size > self._max_transform:
                    return await self._streamed(request, upstream, headers, started, b"".join(chunks))
        except (TimeoutError, aiohttp.ClientError):
            raise upstream_failed(timeout=False) from None
        return self._answer(upstream, headers, b"".join(chunks), None, started, links)

    async def _streamed(self, request: web.Request, upstream: aiohttp.ClientResponse,
                        response_headers: CIMultiDict[str], started: float,
                        prefix: bytes = b"") -> tuple[web.StreamResponse, UpstreamResult]:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=response_headers)
        if upstream.content_length is not None and "Content-Encoding" not in upstream.headers:
            response.content_length = upstream.content_length
        await response.prepare(request)
        try:
            if prefix:
                await response.write(prefix)
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                await response.write(chunk)
        except (TimeoutError, aiohttp.ClientError):
            # Headers are already sent; cut the connection so the client sees a broken answer.
            if request.transport is not None:
                request.transport.close()
            return response, UpstreamResult(upstream.status, (time.perf_counter() - started) * 1000,
                                             {"upstream_body": "interrupted"})
        await response.write_eof()
        return response, UpstreamResult(upstream.status, (time.perf_counter() - started) * 1000, {})

    async def _drain(self, upstream: aiohttp.ClientResponse) -> None:
        """Read and drop an answer's body (bounded), so the connection can be reused."""
        size = 0
        try:
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > self._max_transform:
                    upstream.close()
                    return
        except (TimeoutError, aiohttp.ClientError):
            upstream.close()

    async def _read(self, upstream: aiohttp.ClientResponse) -> bytes:
        chunks, size = [], 0
        async for chunk in upstream.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self._max_transform:
                raise ValueError("answer too large to filter")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _rewritten(self, upstream: aiohttp.ClientResponse, headers: CIMultiDict[str], rewrite: Rewrite | None,
                         started: float, links: LinkTarget) -> tuple[web.StreamResponse, UpstreamResult]:
        try:
            raw = await self._read(upstream)
        except (TimeoutError, ValueError, aiohttp.ClientError) as exc:
            raise refusal("response_not_enforceable", detail=exc) from None
        return self._answer(upstream, headers, raw, rewrite, started, links)

    def _answer(self, upstream: aiohttp.ClientResponse, headers: CIMultiDict[str], raw: bytes,
                rewrite: Rewrite | None, started: float,
                links: LinkTarget) -> tuple[web.StreamResponse, UpstreamResult]:
        """The client's answer from the WMS answer's whole body, rewritten as ``rewrite`` and the
        conventions require."""
        status, content_type = upstream.status, upstream.content_type
        ms = (time.perf_counter() - started) * 1000
        try:
            body, real_status, facts = self._apply(raw, status, content_type, rewrite, links, ms)
        except (TimeoutError, ValueError, UnicodeDecodeError, RecursionError, csv.Error, aiohttp.ClientError) as exc:
            raise refusal("response_not_enforceable", detail=exc) from None
        headers.pop("Content-Type", None)
        if not body:
            response = web.Response(status=status, headers=headers)
        else:
            response = web.Response(status=status, body=body, content_type=content_type,
                                    charset="utf-8" if _is_json(content_type) or content_type.startswith("text/")
                                    else None, headers=headers)
        return response, UpstreamResult(real_status, ms, facts)

    def _inspect(self, parsed: answer_json.Parsed, raw: bytes, links: LinkTarget) -> BodyOutcome:
        """The conventions' reading of a parsed answer (links rewritten in place, the body's status).
        A document orjson read is walked only when its decoded text can hold a WMS link or the
        status field (escapes, UTF-16 and the like can no longer hide one there); any other is walked.
        The decoded text is searched in ``raw`` itself when it holds no ``\\u`` or ``\\/`` escape
        (orjson read it, so it is UTF-8, and its other escapes are the ones orjson writes too),
        else in orjson's writing of the document."""
        if parsed.fast:
            written = raw if b"\\u" not in raw and b"\\/" not in raw else answer_json.plain(parsed)
            if written is not None and not self.conventions.concerns_plain(written):
                return BodyOutcome(None, 0)
        return self.conventions.inspect(parsed.document, links)

    def _apply(self, raw: bytes, status: int, content_type: str, rewrite: Rewrite | None, links: LinkTarget,
               ms: float) -> tuple[bytes, int, dict[str, Any]]:
        """The answer's new body, the status it really has and facts for the audit record.

        Raises:
            ValueError: a 2xx answer cannot be rewritten as the decision requires.
            UpstreamFailure: a 4xx answer cannot be, so its body is replaced.
        """
        if not raw:
            return raw, status, {}
        if rewrite is None and not self.conventions.concerns(raw):
            return raw, status, {}  # nothing to rewrite or read in it: relayed byte for byte
        if _is_json(content_type):
            try:
                parsed = answer_json.loads(raw)
            except ValueError:
                if rewrite is None:
                    return raw, status, {}  # only the conventions looked: not JSON after all, relay it
                if 200 <= status < 300:
                    raise
                raise upstream_error(status, ms, None) from None
            document = parsed.document
            outcome = self._inspect(parsed, raw, links)
            facts: dict[str, Any] = {"links_rewritten": outcome.links} if outcome.links else {}
            real = status
            if outcome.status is not None and outcome.status != status:
                real = outcome.status
                facts["upstream_http_status"] = status
                facts["upstream_failure_in_body"] = True
            if rewrite is not None:
                facts.update(rewrite.json(document, real))
            elif not outcome.links:
                return raw, real, facts  # only read: relayed byte for byte
            return answer_json.dumps(parsed), real, facts
        if rewrite is None:
            return raw, status, {}
        try:
            if rewrite.text is None or content_type not in ("text/csv", "text/html", XLSX):
                raise ValueError(f"cannot enforce obligations on {content_type or 'an untyped answer'}")
            body, facts = rewrite.text(raw, content_type, status)
            return body, status, facts
        except (ValueError, UnicodeDecodeError, csv.Error):
            if 200 <= status < 300:
                raise
        if 300 <= status < 400:
            return b"", status, {"upstream_body": "dropped"}
        raise upstream_error(status, ms, None)  # a 4xx page we cannot vet: the gateway's own error instead
