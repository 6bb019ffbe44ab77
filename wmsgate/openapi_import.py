"""Draft a route map from an OpenAPI 3 document (``wmsgate routes import-openapi``).

Every operation becomes a route: the module from the path's first meaningful segment,
the verb from the method and action words, the kind from the path's shape (a trailing
``{id}`` is one item, a collection is a list, a download is an export). What the
document cannot tell (an action word that is no known verb, a list without a rows
array, where an item's warehouse comes from when the WMS has no tenants) is drafted
with a best guess and marked ``# TODO(wmsgate)`` for a person to decide; the draft is
then a normal route map, checked by the gateway at start. Nothing is guessed silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")
#: Leading path segments that name no module.
_PREFIXES = frozenset({"api", "rest", "v1", "v2", "v3", "openapi"})
#: Action words (a literal last segment, or part of it) -> verb.
ACTION_VERBS = {
    "pick": "pick", "picking": "pick", "scan": "scan", "review": "review", "check": "review", "pack": "pack",
    "packing": "pack", "ship": "ship", "shipping": "ship", "dispatch": "ship", "count": "count", "stocktake": "count",
    "move": "move", "transfer": "move", "approve": "approve", "audit": "approve",
    "export": "export", "file": "export", "download": "export", "csv": "export", "xlsx": "export",
    "delete": "delete", "remove": "delete", "update": "update", "status": "update", "edit": "update",
}
#: Collection words DRF routers and others put after the module (``/asn/list/``).
_COLLECTION_WORDS = frozenset({"list", "all", "search", "query", "page"})
_BULK_WORDS = ("batch", "bulk")
_PARAM = re.compile(r"^\{([^{}]+)\}$")
_ROWS_KEYS = ("results", "items", "data", "rows", "records", "list")
_TOTAL_KEYS = ("count", "total", "total_count", "totalCount")


@dataclass
class DraftRoute:
    """One drafted route and what a person has to decide about it."""

    method: str
    template: str
    module: str
    verb: str
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    todo: list[str] = field(default_factory=list)
    summary: str = ""


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _module(path: str) -> str:
    literals = [s for s in _segments(path) if not _PARAM.match(s)]
    for seg in literals:
        if seg.lower() not in _PREFIXES:
            return re.sub(r"[^a-z_]", "_", seg.lower()).strip("_") or "wms"
    return "wms"


def _action(path: str, module: str) -> str | None:
    """The literal last segment when it is an action word (not the module, not a collection word)."""
    segs = _segments(path)
    if not segs or _PARAM.match(segs[-1]):
        return None
    last = segs[-1].lower()
    if last == module or last.lower() in _PREFIXES or last in _COLLECTION_WORDS:
        return None
    return last


def _verb_for_action(action: str) -> str | None:
    if action in ACTION_VERBS:
        return ACTION_VERBS[action]
    parts = re.split(r"[_\-.]", action)
    found = {ACTION_VERBS[p] for p in parts if p in ACTION_VERBS}
    return found.pop() if len(found) == 1 else None


def _json_schema(op: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    for status in ("200", "201", "default"):
        content = ((op.get("responses") or {}).get(status) or {}).get("content") or {}
        schema = (content.get("application/json") or {}).get("schema")
        if schema:
            return _resolve(schema, spec)
    return {}


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = spec
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}
    return schema


def _produces(op: dict[str, Any], media: str) -> bool:
    return any(media in ((r or {}).get("content") or {}) for r in (op.get("responses") or {}).values())


def _list_spec(op: dict[str, Any], spec: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    props = _json_schema(op, spec).get("properties") or {}
    rows = next((k for k in _ROWS_KEYS if (props.get(k) or {}).get("type") == "array"), None)
    total = next((k for k in _TOTAL_KEYS if k in props), None)
    if rows is None:
        return {"rows": "results", "total": "count"}, ("the answer's rows array is not in the document: "
                                                       "rows/total guessed")
    return {"rows": rows, **({"total": total} if total else {})}, None


def draft_route(method: str, path: str, op: dict[str, Any], spec: dict[str, Any], tenant: str | None) -> DraftRoute:
    """Draft the route of one OpenAPI operation.

    Args:
        method: lower-case HTTP method.
        path: the OpenAPI path template (``/goods/{id}/``).
        op: the operation object.
        spec: the whole document (for ``$ref``).
        tenant: the gateway's tenant dimension (``warehouse``) when the WMS has one tenant
            per warehouse (resources then lie in the request's tenant), else None.
    """
    module = _module(path)
    segs = _segments(path)
    is_item = bool(segs) and bool(_PARAM.match(segs[-1]))
    action = _action(path, module)
    draft = DraftRoute(method.upper(), path, module, "view", "item", summary=str(op.get("summary") or ""))
    if action and any(w in action for w in _BULK_WORDS):
        draft.kind = "bulk"
    action_verb = _verb_for_action(action) if action else None
    if method == "get":
        exporting = action_verb == "export" or _produces(op, "text/csv")
        draft.verb = "export" if exporting else "view"
        draft.kind = "item" if is_item else ("aggregate" if exporting else "list")
        if action and not exporting and action_verb is None:
            draft.todo.append(f"action '{action}' read as a list of {module}; check module and verb")
    elif method == "post":
        if action is None:
            draft.verb = "create"
        elif action_verb is not None:
            draft.verb = action_verb
        else:
            draft.verb = "update"
            draft.todo.append(f"action '{action}' is no known verb: 'update' guessed")
    else:
        draft.verb = {"put": "update", "patch": "update", "delete": "delete"}[method]
    documented = [str(p.get("name")) for p in (op.get("parameters") or [])
                  if isinstance(p, dict) and p.get("in") == "query" and p.get("name")]
    if documented and method == "get":  # what the document says the endpoint takes, and nothing else
        draft.fields["query"] = {"allow": sorted(dict.fromkeys(documented))}
    if draft.kind == "list":
        list_spec, problem = _list_spec(op, spec)
        draft.fields["list"] = list_spec
        if problem:
            draft.todo.append(problem)
        if tenant is None:
            draft.todo.append("how the WMS filters these rows by warehouse/channel: add list.narrow and row_fields")
    params = [m.group(1) for s in segs if (m := _PARAM.match(s))]
    if is_item and params:
        draft.fields["resource"] = f"{{path.{params[-1]}}}"
    if tenant is not None and draft.kind == "list":
        draft.fields["attributes"] = {tenant: "tenant"}  # the tenant's rows, all of them in it
    if draft.kind in ("item", "bulk", "aggregate"):
        if tenant is not None:
            draft.fields["attributes"] = {tenant: "tenant"}
        elif draft.kind != "aggregate":
            draft.fields["note"] = "TODO: where this resource's warehouse/channel come from (attributes or lookup)"
            draft.todo.append("no tenant: give the resource's scope attributes or a lookup")
    if draft.kind == "bulk":
        draft.todo.append("a bulk request names several resources: give attributes or a lookup with keys")
    return draft


def draft_route_map(spec: dict[str, Any], tenant: str | None = None) -> tuple[str, list[DraftRoute]]:
    """Draft a route map (YAML text with comments) from an OpenAPI 3 document.

    Args:
        spec: the parsed OpenAPI document.
        tenant: see :func:`draft_route`.

    Returns:
        The YAML text and the drafted routes (those with ``todo`` need a person's decision).

    Raises:
        ValueError: not an OpenAPI 3 document.
    """
    if not isinstance(spec, dict) or not str(spec.get("openapi", "")).startswith("3") \
            or not isinstance(spec.get("paths"), dict):
        raise ValueError("not an OpenAPI 3 document (needs 'openapi: 3.x' and 'paths')")
    drafts = [draft_route(m, path, op, spec, tenant) for path, ops in spec["paths"].items()
              for m, op in ops.items() if m in METHODS and isinstance(op, dict)]
    title = (spec.get("info") or {}).get("title", "the WMS")
    lines = [f"# Route map drafted by `wmsgate routes import-openapi` from {title}'s OpenAPI document.",
             "# Every endpoint not listed here is refused (route_not_mapped). Check each route,",
             "# decide the ones marked TODO(wmsgate), then `wmsgate routes check` and start the gateway.",
             "version: 1", "", "routes:"]
    for d in drafts:
        if d.summary:
            lines.append(f"  # {d.summary}")
        for todo in d.todo:
            lines.append(f"  # TODO(wmsgate): {todo}")
        lines.append(f"  - route: {d.method} {d.template}")
        lines.append(f"    module: {d.module}")
        lines.append(f"    verb: {d.verb}")
        lines.append(f"    kind: {d.kind}")
        for key, value in d.fields.items():
            lines.append(f"    {key}: {_flow(value)}")
    return "\n".join(lines) + "\n", drafts


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    text = str(value)
    return f'"{text}"' if any(c in text for c in "{}:#,[]") or text.startswith("TODO") else text
