"""The audit API under ``/_gateway/audit`` (the management side of ``wmsgate audit``).

``GET /_gateway/audit/records?user=&since=&...&limit=&offset=``: matching records, newest
first, one page (``audit:view``).
``GET /_gateway/audit/export?format=csv|jsonl&...``: every matching record in chain
order, streamed, with the signed chain head (``audit:export``); CSV is UTF-8 with a BOM.

Both are authorized by the policy like any request (module ``audit``) and audited
themselves. Filters: ``since``, ``until`` (ISO 8601 or ``30m``/``1h``/``2d`` ago, UTC),
``user``, ``role``, ``module``, ``verb``, ``resource_id``, ``warehouse``, ``channel``,
``decision``, ``client_ip``, ``device_id``, ``approval_id``. An unknown parameter is
refused (400) rather than ignored, so a mistyped filter cannot widen a search silently.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import MultiMapping
from sqlalchemy.exc import SQLAlchemyError

from authorizer.audit import AuditQuery, AuditStore
from authorizer.audit.export import export_csv, export_jsonl
from authorizer.authz.routes import Route
from authorizer.enforce.exports import watermark
from authorizer.messages import TEXTS
from authorizer.timeparse import parse_time
from proxy.lifecycle import context_of
from proxy.responses import Refusal, refusal

RECORDS = Route("GET", "/_gateway/audit/records", ("_gateway", "audit", "records"), "audit", "view")
EXPORT = Route("GET", "/_gateway/audit/export", ("_gateway", "audit", "export"), "audit", "export")
ROUTES = {route.template: route for route in (RECORDS, EXPORT)}

#: Largest page of :data:`RECORDS`.
MAX_LIMIT = 1000
_TEXT_FILTERS = ("user", "role", "module", "verb", "resource_id", "warehouse", "channel", "client_ip", "device_id",
                 "approval_id")
_ALLOWED = frozenset({*_TEXT_FILTERS, "since", "until", "decision", "limit", "offset", "format"})


def _bad(name: str, problem: str, **values: object) -> Refusal:
    """400 ``bad_audit_query``: parameter ``name`` has the catalog's ``problem`` (``query_not_integer``...)."""
    text = TEXTS[problem].format(**values)
    return refusal("bad_audit_query", name=name, zh=text.zh, en=text.en)


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, "query_not_integer") from None
    if not low <= value <= high:
        raise _bad(name, "query_out_of_range", low=low, high=high)
    return value


def _time(params: Mapping[str, str], name: str) -> dt.datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise _bad(name, "query_not_time") from None


def parse_query(params: Mapping[str, str], paged: bool) -> AuditQuery:
    """The search filters of a request's query string.

    Args:
        params: the query parameters (one value each).
        paged: honour ``limit`` (1-1000, default 100) and ``offset``; False = every match.

    Raises:
        Refusal: 400 ``bad_audit_query`` for an unknown, repeated or malformed parameter.
    """
    if isinstance(params, MultiMapping) and len(set(params.keys())) != len(params):
        raise _bad(next(k for k in params if len(params.getall(k)) > 1), "query_repeated")
    unknown = sorted(set(params) - _ALLOWED)
    if unknown:
        raise _bad(unknown[0], "query_unknown")
    text: dict[str, Any] = {}
    for name in _TEXT_FILTERS:
        value = params.get(name)
        if value is not None:
            if not value.strip() or len(value) > 256:
                raise _bad(name, "query_bad_text")
            text[name] = value.strip()
    decision = params.get("decision")
    if decision is not None and decision not in ("allow", "deny"):
        raise _bad("decision", "query_bad_decision")
    since, until = _time(params, "since"), _time(params, "until")
    if since is not None and until is not None and since >= until:
        raise _bad("since", "query_since_after_until")
    limit = _int(params, "limit", 100, 1, MAX_LIMIT) if paged else 0
    offset = _int(params, "offset", 0, 0, 10_000_000) if paged else 0
    return AuditQuery(since=since, until=until, decision=decision, limit=limit, offset=offset, **text)


def approval_not_supported() -> Refusal:
    """The policy asks for an approval to read the trail: reads cannot be held, so they are refused."""
    return refusal("audit_approval_not_supported")


def export_format(params: Mapping[str, str]) -> str:
    """``csv`` (default) or ``jsonl``.

    Raises:
        Refusal: 400 for another value.
    """
    value = params.get("format", "csv")
    if value not in ("csv", "jsonl"):
        raise _bad("format", "query_bad_format")
    return value


async def records_response(store: AuditStore, query: AuditQuery, decision_id: str) -> web.Response:
    """One page: ``{"records": [...], "limit", "offset", "next_offset"}`` (``next_offset`` null on the last page)."""
    rows = await store.search(query)
    more = len(rows) == query.limit
    return web.json_response(
        {"records": rows, "limit": query.limit, "offset": query.offset,
         "next_offset": query.offset + query.limit if more else None},
        headers={"X-Decision-Id": decision_id, "Cache-Control": "no-store"},
        dumps=lambda value: json.dumps(value, ensure_ascii=False, default=str))


async def export_response(request: web.Request, store: AuditStore, query: AuditQuery, fmt: str,
                          decision_id: str) -> tuple[web.StreamResponse, str | None]:
    """Stream the export to the client (chunked), ending with the signed chain head.

    Returns:
        The response and, when the store failed mid-stream, what went wrong (the export
        then ends with an error line instead of the chain head, so it cannot verify).
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson; charset=utf-8"
    response = web.StreamResponse(headers={
        "Content-Type": content_type, "X-Decision-Id": decision_id, "Cache-Control": "no-store",
        "X-Export-Watermark": watermark(decision_id),
        "Content-Disposition": f'attachment; filename="audit-{stamp}.{fmt}"'})
    response.enable_chunked_encoding()
    await response.prepare(request)
    context_of(request).streaming = response  # an error from here on ends this answer, not a new one
    mark = watermark(decision_id)
    chunks = export_csv(store, query, mark) if fmt == "csv" else export_jsonl(store, query, mark)
    error = None
    try:
        async for chunk in chunks:
            await response.write(chunk.encode("utf-8"))
    except (SQLAlchemyError, ValueError, TypeError, KeyError) as exc:  # the store or a record it holds
        error = f"the audit store failed during the export: {type(exc).__name__}"
        line = f"# {error}\r\n" if fmt == "csv" else json.dumps({"error": error}) + "\n"
        await response.write(line.encode("utf-8"))
    await response.write_eof()
    return response, error
