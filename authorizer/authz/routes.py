"""The route map: which WMS endpoint is which module:verb on which resource.

The map is a YAML file (see ``config/routes.yaml``) the gateway adapts to a WMS
with; the WMS is never changed. It is validated when loaded, and every error
names the file and line. Matching is exact and case-sensitive on decoded path
segments; a template ending in one ``/`` (``/goods/``, as Django/DRF URLs are)
matches only paths ending in one ``/``; a ``{name}`` segment never matches an
empty one. Anything not in the map is denied by the caller (``route_not_mapped``).

Source expressions say where a value comes from:
``path.NAME`` (a ``{NAME}`` segment of the route), ``query.NAME`` (every value
of a query parameter), ``body.A.B`` (a field of the JSON body; a list gives
several values), ``const.VALUE`` and ``tenant`` (the WMS tenant the request runs in,
``upstream.tenant`` in the gateway config: rows of such a WMS carry no warehouse).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from authorizer.authz.query_params import DEFAULT_ORDERING, QuerySpec
from authorizer.authz.scope import SCOPE_DIMENSIONS
from authorizer.enforce.caller_identity import template_problems

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
#: The domain's verbs (domain.md); ``receive`` (stock into a warehouse: the target side of a
#: transfer); and ``reveal``: a time-boxed reveal of a masked field (the gateway's own action,
#: ``POST /_gateway/reveals``, never a WMS route's verb in practice).
VERBS = frozenset({"view", "create", "update", "delete", "pick", "scan", "review", "pack", "ship", "count",
                   "move", "approve", "export", "reveal", "receive"})
KINDS = frozenset({"item", "list", "bulk", "aggregate"})
HTML_KINDS = frozenset({"tables", "none"})
_SOURCE_RE = re.compile(r"^(path|query|body|const)\.([A-Za-z0-9_*.\-]+)$")
_PARAM_RE = re.compile(r"^\{([a-z_][a-z0-9_]*)\}$")
_LITERAL_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_MODULE_RE = re.compile(r"^[a-z_]+(\.[a-z_]+)*$")
TEMPLATE_PART = re.compile(r"\{([^{}]+)\}")


class RouteMapError(ValueError):
    """The route map is invalid; the message names the file and line."""


@dataclass(frozen=True)
class Source:
    """Where a value comes from: ``kind`` is path/query/body/const, ``name`` the parameter, field or constant."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.name}" if self.name else self.kind


@dataclass(frozen=True)
class ScopedPermission:
    """An extra permission a route needs over another place than its resource (a transfer
    needs ``inventory:receive`` in the target warehouse beside ``inventory:ship`` in the source).

    Attributes:
        module, verb: the permission.
        attributes: scope dimension -> where the request names that place (``body.to_warehouse``).
    """

    module: str
    verb: str
    attributes: dict[str, Source]


@dataclass(frozen=True)
class Lookup:
    """A WMS endpoint the gateway reads to learn a resource's attributes.

    Attributes:
        name: the lookup's name in the map.
        path: path template with one ``{id}`` segment.
        attributes: scope dimension -> field of the looked-up JSON record.
        state: state name -> field of the record whose current value a write's policy input
            carries (``input.resource.state``, e.g. an order's ``status``), read fresh (never
            from the lookup cache) for writes.
    """

    name: str
    path: str
    attributes: dict[str, str]
    state: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ListSpec:
    """How a list endpoint answers and can be narrowed.

    Attributes:
        rows: key of the rows array in the JSON answer.
        total: key of the total count, or None.
        narrow: scope dimension -> query parameter the WMS filters by (repeatable).
        row_fields: scope dimension -> field of a row carrying that dimension.
    """

    rows: str
    total: str | None
    narrow: dict[str, str]
    row_fields: dict[str, str]


@dataclass(frozen=True)
class Route:
    """One mapped endpoint.

    Attributes:
        method: HTTP method.
        template: path template, e.g. ``/api/orders/{order_no}``.
        segments: the template split on ``/`` (without the leading empty one).
        module, verb: the permission the request needs.
        kind: ``item`` (one resource), ``list`` (rows narrowed by scope), ``bulk``
            (several resources, all must be in scope), ``aggregate`` (a report; an
            absent attribute means all values, ``*``).
        resource_id: template of the resource id, e.g. ``{path.order_no}``.
        attributes: scope dimension -> source, for attributes the request carries.
        lookup: lookup used for attributes, with the source of its key(s).
        also_when_body_has: body field -> extra ``module:verb`` required when present.
        needs_body: the JSON body must be read before deciding.
        line: line of the route in the map file.
        html: for a legacy web page, how its HTML carries records: ``tables`` (rows of
            tables whose header cells name the fields: filtered and masked like JSON),
            ``none`` (no record data at all, e.g. a menu); None = not an HTML page.
        columns: header label -> field name, for CSV exports and HTML tables whose
            headers are labels (``商品成本: goods_cost``), so masks by field apply to them.
        query: the query parameters the route accepts (allow or deny list, ordering parameters).
        body_identity: JSON body fields that carry who acts (``creater``, ``operator``), each
            forced to the caller's value or refused when it differs.
        enforcement: ``enforce`` or ``report`` (shadow mode) for this route; None = the
            gateway's default (``enforcement:`` in its config).
        quantities: name -> top-level JSON body field holding a number the write's magnitude
            is judged by (``qty: delta``), given to the policy as ``input.action.quantities``.
        also_at: extra permissions over other places (``input.action.also`` entries with
            ``attributes``: each must be granted and the person's scope must cover its place).
    """

    method: str
    template: str
    segments: tuple[str, ...]
    module: str
    verb: str
    kind: str = "item"
    resource_id: str | None = None
    attributes: dict[str, Source] = field(default_factory=dict)
    lookup: tuple[Lookup, Source] | None = None
    list_spec: ListSpec | None = None
    also_when_body_has: dict[str, tuple[str, str]] = field(default_factory=dict)
    needs_body: bool = False
    line: int = 0
    html: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    query: QuerySpec = field(default_factory=QuerySpec)
    body_identity: tuple[BodyIdentityField, ...] = ()
    enforcement: str | None = None
    quantities: dict[str, str] = field(default_factory=dict)
    also_at: tuple[ScopedPermission, ...] = ()

    @property
    def key(self) -> str:
        """``METHOD /template``, how policy data (masks) and reports name the route."""
        return f"{self.method} {self.template}"

    @property
    def uses_tenant(self) -> bool:
        """The route's resource lies in the request's tenant (an attribute with source ``tenant``)."""
        return any(s.kind == "tenant" for s in self.attributes.values())

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the ``{...}`` segments."""
        return tuple(m.group(1) for s in self.segments if (m := _PARAM_RE.match(s)))


@dataclass(frozen=True)
class BodyIdentityField:
    """A body field that says who acts (the WMS records it as the creator or operator).

    Attributes:
        field: the top-level JSON member.
        value: the caller's value, a header template (``{username}``, ``{attr:wms_staff_id}``).
        mode: ``force`` (set to the caller's value, whatever was sent) or ``refuse`` (403
            ``identity_field_mismatch`` when the body says someone else).
        integer: the WMS wants a JSON number (a numeric staff id), not a string.
    """

    field: str
    value: str
    mode: str = "force"
    integer: bool = False


@dataclass(frozen=True)
class RouteMatch:
    """A request matched to a route, with the values of its path parameters."""

    route: Route
    params: dict[str, str]


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that records each mapping's line under the key ``__line__``."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = cast(dict[str, Any], loader.construct_mapping(node, deep=True))
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class RouteMap:
    """All mapped routes, indexed for matching.

    Build with :meth:`load` (a file) or :meth:`from_text`.
    """

    def __init__(self, routes: list[Route], lookups: dict[str, Lookup]) -> None:
        self.routes = routes
        self.lookups = lookups
        self._index: dict[tuple[str, int], list[Route]] = {}
        for route in sorted(routes, key=lambda r: -sum(1 for s in r.segments if not _PARAM_RE.match(s))):
            self._index.setdefault((route.method, len(route.segments)), []).append(route)

    @classmethod
    def load(cls, path: Path) -> RouteMap:
        """Load and validate a route map file.

        Raises:
            RouteMapError: unreadable file or invalid content (message names ``file:line``).
        """
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RouteMapError(f"{path}: cannot read: {exc}") from exc
        return cls.from_text(text, str(path))

    @classmethod
    def from_text(cls, text: str, filename: str = "<routes>") -> RouteMap:
        """Parse and validate route map YAML text.

        Raises:
            RouteMapError: invalid YAML or content; the message names ``filename:line``.
        """
        try:
            data = yaml.load(text, Loader=_LineLoader)
        except yaml.YAMLError as exc:
            raise RouteMapError(f"{filename}: invalid YAML: {exc}") from exc
        return _Parser(filename).parse(data)

    def match(self, method: str, segments: list[str]) -> RouteMatch | None:
        """Find the route for ``method`` and decoded path ``segments``; literal segments win over parameters.

        Returns:
            The match, or None when nothing is mapped (the caller denies).
        """
        for route in self._index.get((method, len(segments)), ()):
            params: dict[str, str] = {}
            for pattern, actual in zip(route.segments, segments, strict=True):
                m = _PARAM_RE.match(pattern)
                if m:
                    if not actual:
                        break
                    params[m.group(1)] = actual
                elif pattern != actual:
                    break
            else:
                return RouteMatch(route, params)
        return None


class _Parser:
    def __init__(self, filename: str) -> None:
        self.filename = filename

    def fail(self, line: int | None, message: str) -> RouteMapError:
        return RouteMapError(f"{self.filename}:{line or '?'}: {message}")

    def keys(self, node: dict[str, Any], allowed: set[str], where: str) -> None:
        unknown = set(node) - allowed - {"__line__"}
        if unknown:
            raise self.fail(node.get("__line__"), f"{where}: unknown key(s) {', '.join(sorted(unknown))}")

    def source(self, value: Any, line: int | None, params: tuple[str, ...] | None) -> Source:
        if value == "tenant":
            return Source("tenant", "")
        m = _SOURCE_RE.match(value) if isinstance(value, str) else None
        if not m:
            raise self.fail(line, f"bad source {value!r}; use path.NAME, query.NAME, body.FIELD, const.VALUE "
                                  "or tenant")
        src = Source(m.group(1), m.group(2))
        if src.kind == "path" and params is not None and src.name not in params:
            raise self.fail(line, f"source {value!r} names no {{{src.name}}} segment of the route")
        return src

    def parse(self, data: Any) -> RouteMap:
        if not isinstance(data, dict):
            raise self.fail(1, "the route map must be a mapping with 'lookups' and 'routes'")
        self.keys(data, {"version", "lookups", "routes"}, "top level")
        if data.get("version") != 1:
            raise self.fail(data.get("__line__"), "version must be 1")
        lookups = {name: self.lookup(name, spec) for name, spec in (data.get("lookups") or {}).items()
                   if name != "__line__"}
        routes_data = data.get("routes")
        if not isinstance(routes_data, list) or not routes_data:
            raise self.fail(data.get("__line__"), "'routes' must be a non-empty list")
        routes: list[Route] = []
        seen: dict[tuple[str, str], int] = {}
        for item in routes_data:
            route = self.route(item, lookups)
            key = (route.method, route.template)
            if key in seen:
                raise self.fail(route.line, f"{route.method} {route.template} is already mapped at line {seen[key]}")
            seen[key] = route.line
            routes.append(route)
        return RouteMap(routes, lookups)

    def lookup(self, name: str, spec: Any) -> Lookup:
        if not isinstance(spec, dict):
            raise self.fail(None, f"lookup {name!r} must be a mapping")
        line = spec.get("__line__")
        self.keys(spec, {"path", "attributes", "state"}, f"lookup {name!r}")
        path, attrs = spec.get("path"), spec.get("attributes")
        if not isinstance(path, str) or path.count("{id}") != 1 or not path.startswith("/"):
            raise self.fail(line, f"lookup {name!r}: path must start with / and hold one {{id}}")
        if not isinstance(attrs, dict):
            raise self.fail(line, f"lookup {name!r}: attributes must map dimensions to record fields")
        attrs = {k: v for k, v in attrs.items() if k != "__line__"}
        for dim, fld in attrs.items():
            if dim not in SCOPE_DIMENSIONS or not isinstance(fld, str):
                raise self.fail(line, f"lookup {name!r}: {dim!r} is not a scope dimension "
                                      f"({', '.join(SCOPE_DIMENSIONS)})")
        state = spec.get("state") or {}
        if not isinstance(state, dict):
            raise self.fail(line, f"lookup {name!r}: state must map state names to record fields")
        state = {k: v for k, v in state.items() if k != "__line__"}
        if not all(isinstance(k, str) and k.isidentifier() and isinstance(v, str) and v for k, v in state.items()):
            raise self.fail(line, f"lookup {name!r}: state must map names (identifiers) to record fields")
        return Lookup(name, path, attrs, state)

    def route(self, item: Any, lookups: dict[str, Lookup]) -> Route:
        if not isinstance(item, dict):
            raise self.fail(None, "each route must be a mapping")
        line = item.get("__line__")
        self.keys(item, {"route", "module", "verb", "kind", "resource", "attributes", "lookup", "list",
                         "also_when_body_has", "note", "html", "columns", "query", "body_identity",
                         "enforcement", "quantities", "also_at"}, "route")
        html = item.get("html")
        if html is not None and html not in HTML_KINDS:
            raise self.fail(item.get("__line__"), f"html {html!r} is not one of {', '.join(sorted(HTML_KINDS))}")
        method, _, template = str(item.get("route", "")).partition(" ")
        if method not in METHODS:
            raise self.fail(line, f"route must be 'METHOD /path' with METHOD in {', '.join(sorted(METHODS))}")
        if not template.startswith("/") or "//" in template:
            raise self.fail(line, f"bad path template {template!r}")
        segments = tuple(template.split("/")[1:])
        for i, seg in enumerate(segments):
            if not (_PARAM_RE.match(seg) or _LITERAL_RE.match(seg) or (seg == "" and i == len(segments) - 1)):
                raise self.fail(line, f"path segment {seg!r} must be a literal or {{name}}")
        params = tuple(m.group(1) for s in segments if (m := _PARAM_RE.match(s)))
        module, verb = item.get("module"), item.get("verb")
        if not isinstance(module, str) or not _MODULE_RE.match(module):
            raise self.fail(line, f"module {module!r} must look like 'orders' or 'reports.sales'")
        if verb not in VERBS:
            raise self.fail(line, f"verb {verb!r} is not one of {', '.join(sorted(VERBS))}")
        kind = item.get("kind", "item")
        if kind not in KINDS:
            raise self.fail(line, f"kind {kind!r} is not one of {', '.join(sorted(KINDS))}")
        attributes = {}
        for dim, src in (item.get("attributes") or {}).items():
            if dim == "__line__":
                continue
            if dim not in SCOPE_DIMENSIONS:
                raise self.fail(line, f"attribute {dim!r} is not a scope dimension")
            attributes[dim] = self.source(src, line, params)
        lookup = self.route_lookup(item.get("lookup"), lookups, line, params, kind)
        list_spec = self.list_spec(item.get("list"), line, html == "tables") if kind == "list" else None
        if kind == "list" and list_spec is None:
            raise self.fail(line, "a list route needs 'list: {rows: ...}'")
        if kind != "list" and item.get("list") is not None:
            raise self.fail(line, "'list' is only for kind: list")
        also = {}
        for fld, perm in (item.get("also_when_body_has") or {}).items():
            if fld == "__line__":
                continue
            mod, _, vb = str(perm).rpartition(":")
            if not _MODULE_RE.match(mod) or vb not in VERBS:
                raise self.fail(line, f"also_when_body_has: {perm!r} must be 'module:verb'")
            also[fld] = (mod, vb)
        resource_id = item.get("resource")
        if resource_id is not None:
            for part in TEMPLATE_PART.findall(str(resource_id)):
                self.source(part, line, params)
        also_at = self.also_at(item.get("also_at"), line, params)
        if also_at and kind == "list":
            raise self.fail(line, "also_at is for item, bulk and aggregate routes (a list's rows are narrowed instead)")
        sources = list(attributes.values()) + ([lookup[1]] if lookup else [])
        sources += [src for extra in also_at for src in extra.attributes.values()]
        sources += [self.source(p, line, params) for p in TEMPLATE_PART.findall(str(resource_id or ""))]
        body_identity = self.body_identity(item.get("body_identity"), line, method)
        quantities = self.quantities(item.get("quantities"), line, method)
        needs_body = bool(also) or bool(body_identity) or bool(quantities) or any(s.kind == "body" for s in sources)
        if kind in ("item", "bulk") and not attributes and lookup is None:
            note = item.get("note")
            if not note:
                raise self.fail(line, "an item/bulk route needs 'attributes' or 'lookup' "
                                      "(or a 'note' saying why the resource carries no scope)")
        columns = {k: v for k, v in (item.get("columns") or {}).items() if k != "__line__"}
        if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in columns.items()):
            raise self.fail(line, "columns must map header labels to field names")
        return Route(method, template, segments, module, verb, kind, None if resource_id is None else str(resource_id),
                     attributes, lookup, list_spec, also, needs_body, line or 0, html, columns,
                     self.query_spec(item.get("query"), line), body_identity, self.enforcement(item, line),
                     quantities, also_at)

    def also_at(self, spec: Any, line: int | None, params: tuple[str, ...]) -> tuple[ScopedPermission, ...]:
        if spec is None:
            return ()
        if not isinstance(spec, list):
            raise self.fail(line, "also_at must be a list of {permission: module:verb, attributes: {...}}")
        out = []
        for extra in spec:
            if not isinstance(extra, dict):
                raise self.fail(line, "also_at entries must be {permission: module:verb, attributes: {...}}")
            self.keys(extra, {"permission", "attributes"}, "also_at")
            mod, _, vb = str(extra.get("permission", "")).rpartition(":")
            if not _MODULE_RE.match(mod) or vb not in VERBS:
                raise self.fail(line, f"also_at: {extra.get('permission')!r} must be 'module:verb'")
            attrs = {k: v for k, v in (extra.get("attributes") or {}).items() if k != "__line__"}
            if not attrs or not all(dim in SCOPE_DIMENSIONS for dim in attrs):
                raise self.fail(line, "also_at: attributes must map scope dimensions to sources")
            out.append(ScopedPermission(mod, vb, {dim: self.source(src, line, params) for dim, src in attrs.items()}))
        return tuple(out)

    def quantities(self, spec: Any, line: int | None, method: str) -> dict[str, str]:
        if spec is None:
            return {}
        if not isinstance(spec, dict) or method not in ("POST", "PUT", "PATCH"):
            raise self.fail(line, "quantities maps names to JSON body fields, on POST/PUT/PATCH routes")
        out = {k: v for k, v in spec.items() if k != "__line__"}
        if not all(isinstance(k, str) and k.isidentifier() and isinstance(v, str) and v for k, v in out.items()):
            raise self.fail(line, "quantities must map names (identifiers) to JSON body fields")
        return out

    def enforcement(self, item: dict[str, Any], line: int | None) -> str | None:
        mode = item.get("enforcement")
        if mode is not None and mode not in ("enforce", "report"):
            raise self.fail(line, f"enforcement {mode!r} must be enforce or report")
        return mode

    def body_identity(self, spec: Any, line: int | None, method: str) -> tuple[BodyIdentityField, ...]:
        if spec is None:
            return ()
        if not isinstance(spec, dict) or method not in ("POST", "PUT", "PATCH"):
            raise self.fail(line, "body_identity maps body fields to the caller's value, on POST/PUT/PATCH routes")
        out = []
        for name, value in spec.items():
            if name == "__line__":
                continue
            if isinstance(value, str):
                value = {"value": value}
            if not isinstance(value, dict) or not isinstance(value.get("value"), str):
                raise self.fail(line, f"body_identity.{name}: give a template or {{value, mode, type}}")
            self.keys(value, {"value", "mode", "type"}, f"body_identity.{name}")
            mode, kind = value.get("mode", "force"), value.get("type", "string")
            if mode not in ("force", "refuse") or kind not in ("string", "integer"):
                raise self.fail(line, f"body_identity.{name}: mode is force|refuse, type is string|integer")
            if problems := template_problems(value["value"]):
                raise self.fail(line, f"body_identity.{name}: unknown placeholder(s) {', '.join(problems)}")
            out.append(BodyIdentityField(str(name), value["value"], mode, kind == "integer"))
        return tuple(out)

    def query_spec(self, spec: Any, line: int | None) -> QuerySpec:
        if spec is None:
            return QuerySpec()
        if not isinstance(spec, dict):
            raise self.fail(line, "query must be {allow: [...]} or {deny: [...]} (and optionally ordering: [...])")
        self.keys(spec, {"allow", "deny", "ordering"}, "query")
        if "allow" in spec and "deny" in spec:
            raise self.fail(line, "query: give 'allow' or 'deny', not both")

        def names(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = spec.get(key, list(default))
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise self.fail(line, f"query.{key} must be a list of parameter names")
            return tuple(value)

        return QuerySpec(names("allow", ()) if "allow" in spec else None, names("deny", ()),
                         names("ordering", DEFAULT_ORDERING))

    def route_lookup(self, spec: Any, lookups: dict[str, Lookup], line: int | None, params: tuple[str, ...],
                     kind: str) -> tuple[Lookup, Source] | None:
        if spec is None:
            return None
        if not isinstance(spec, dict):
            raise self.fail(line, "lookup must be {name: ..., key: ...} or {name: ..., keys: ...}")
        self.keys(spec, {"name", "key", "keys"}, "lookup")
        if spec.get("name") not in lookups:
            raise self.fail(line, f"lookup {spec.get('name')!r} is not defined under 'lookups'")
        want = "keys" if kind == "bulk" else "key"
        if want not in spec:
            raise self.fail(line, f"a {kind} route's lookup needs '{want}'")
        return lookups[spec["name"]], self.source(spec[want], line, params)

    def list_spec(self, spec: Any, line: int | None, html_tables: bool = False) -> ListSpec | None:
        if spec is None:
            return None
        if not isinstance(spec, dict) or not (isinstance(spec.get("rows"), str) or html_tables):
            raise self.fail(line, "list must be a mapping with 'rows' (the JSON key of the rows)")
        self.keys(spec, {"rows", "total", "narrow", "row_fields"}, "list")
        narrow = {k: v for k, v in (spec.get("narrow") or {}).items() if k != "__line__"}
        row_fields = {k: v for k, v in (spec.get("row_fields") or {}).items() if k != "__line__"}
        for dim in [*narrow, *row_fields]:
            if dim not in SCOPE_DIMENSIONS:
                raise self.fail(line, f"list: {dim!r} is not a scope dimension")
        return ListSpec(str(spec.get("rows", "")), spec.get("total"), narrow,
                        {dim: row_fields.get(dim, dim) for dim in SCOPE_DIMENSIONS})
