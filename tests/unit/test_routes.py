"""The route map: the real file covers the whole demo WMS API; errors name the line."""

from __future__ import annotations

import pytest

from authorizer.authz.routes import RouteMap, RouteMapError
from wmsgate.tools import REPO

# The JSON endpoints of legacy-wms-api.md (the WMS's API as handed over); the HTML pages
# (/ and /ui/...) and /healthz are not exposed through the gateway yet.
LEGACY_API = [
    ("GET", "/api/orders"),
    ("GET", "/api/orders/{order_no}"),
    ("PATCH", "/api/orders/{order_no}"),
    ("DELETE", "/api/orders/{order_no}"),
    ("POST", "/api/orders/batch_delete"),
    ("POST", "/api/orders/batch_status"),
    ("GET", "/api/picking/tasks"),
    ("POST", "/api/picking/{order_no}/scan"),
    ("POST", "/api/picking/{order_no}/confirm"),
    ("POST", "/api/review/{order_no}"),
    ("GET", "/api/review/records"),
    ("DELETE", "/api/review/records/{record_id}"),
    ("POST", "/api/packing/{order_no}"),
    ("POST", "/api/shipping/{order_no}"),
    ("GET", "/api/exceptions"),
    ("POST", "/api/exceptions/{order_no}/resolve"),
    ("GET", "/api/inventory"),
    ("GET", "/api/inventory/{warehouse}/{location}/{sku}"),
    ("DELETE", "/api/inventory/{warehouse}/{location}/{sku}"),
    ("POST", "/api/inventory/adjust"),
    ("POST", "/api/locations/move"),
    ("POST", "/api/stocktakes"),
    ("GET", "/api/batches"),
    ("GET", "/api/batches/{batch_no}"),
    ("PATCH", "/api/batches/{batch_no}"),
    ("GET", "/api/customers/{customer_id}"),
    ("GET", "/api/customs/{order_no}"),
    ("PUT", "/api/customs/{order_no}"),
    ("GET", "/api/reports/warehouse"),
    ("GET", "/api/reports/sales"),
    ("GET", "/api/reports/sales.csv"),
    ("GET", "/api/reports/finance"),
    ("GET", "/api/reports/fulfillment"),
    ("GET", "/legacy/order_detail.do"),
]


@pytest.fixture(scope="module")
def route_map() -> RouteMap:
    return RouteMap.load(REPO / "config" / "routes.yaml")


#: Endpoints the demo WMS has beyond the legacy API spec (a transfer between warehouses, the sales
#: report as a workbook; the
#: SKU master, read by the gateway's lookups only, is deliberately not a client route).
DEMO_EXTENSIONS = [("POST", "/api/transfers"), ("GET", "/api/reports/sales.xlsx")]


def test_every_json_endpoint_of_the_legacy_api_is_mapped(route_map: RouteMap) -> None:
    mapped = {(r.method, r.template) for r in route_map.routes if r.template.startswith(("/api/", "/legacy/"))}
    assert len(LEGACY_API) == 34
    assert set(LEGACY_API) | set(DEMO_EXTENSIONS) == mapped


def test_the_legacy_web_pages_are_mapped(route_map: RouteMap) -> None:
    pages = {(r.method, r.template): (r.module, r.verb) for r in route_map.routes
             if not r.template.startswith(("/api/", "/legacy/"))}
    assert pages == {("GET", "/"): ("portal", "view"), ("GET", "/ui/orders"): ("orders", "view"),
                     ("GET", "/ui/inventory"): ("inventory", "view")}


def test_reports_are_distinct_modules_and_csv_is_export(route_map: RouteMap) -> None:
    by_path = {(r.method, r.template): r for r in route_map.routes}
    assert by_path[("GET", "/api/reports/sales")].module == "reports.sales"
    assert by_path[("GET", "/api/reports/finance")].module == "reports.finance"
    assert by_path[("GET", "/api/reports/warehouse")].module == "reports.warehouse"
    assert by_path[("GET", "/api/reports/fulfillment")].module == "reports.fulfillment"
    assert by_path[("GET", "/api/reports/sales.csv")].verb == "export"


def test_literal_segments_win_over_parameters(route_map: RouteMap) -> None:
    m = route_map.match("POST", ["api", "orders", "batch_status"])
    assert m is not None and m.route.template == "/api/orders/batch_status"
    m = route_map.match("GET", ["api", "review", "records"])
    assert m is not None and m.route.template == "/api/review/records"
    m = route_map.match("POST", ["api", "review", "SO1"])
    assert m is not None and m.params == {"order_no": "SO1"}


def test_matching_is_exact_and_case_sensitive(route_map: RouteMap) -> None:
    assert route_map.match("GET", ["API", "Reports", "Finance"]) is None
    assert route_map.match("GET", ["api", "reports", "finance", "x"]) is None
    assert route_map.match("HEAD", ["api", "orders"]) is None


def test_body_sourced_routes_read_the_body(route_map: RouteMap) -> None:
    adjust = route_map.match("POST", ["api", "inventory", "adjust"])
    assert adjust is not None and adjust.route.needs_body
    tasks = route_map.match("GET", ["api", "picking", "tasks"])
    assert tasks is not None and not tasks.route.needs_body


BASE = """version: 1
lookups:
  order: {path: '/api/orders/{id}', attributes: {warehouse: warehouse}}
routes:
"""


@pytest.mark.parametrize("route_yaml, message", [
    ("  - {route: 'GET /a', module: orders, verb: look, kind: list, list: {rows: items}}\n", "verb 'look'"),
    ("  - {route: 'GET /a', module: orders, verb: view, kind: list, list: {rows: items}, colour: red}\n",
     "unknown key(s) colour"),
    ("  - {route: 'FETCH /a', module: orders, verb: view}\n", "METHOD /path"),
    ("  - {route: 'GET /a/{id}', module: orders, verb: view, attributes: {warehouse: path.nope}}\n",
     "names no {nope} segment"),
    ("  - {route: 'GET /a/{id}', module: orders, verb: view, attributes: {planet: path.id}}\n",
     "not a scope dimension"),
    ("  - {route: 'GET /a/{id}', module: orders, verb: view, lookup: {name: batch, key: path.id}}\n",
     "lookup 'batch' is not defined"),
    ("  - {route: 'GET /a/{id}', module: orders, verb: view}\n", "needs 'attributes' or 'lookup'"),
    ("  - {route: 'GET /a', module: orders, verb: view, kind: list}\n", "needs 'list"),
    ("  - {route: 'GET /a/{id}', module: orders, verb: view, attributes: {warehouse: cookie.x}}\n", "bad source"),
])
def test_invalid_route_maps_name_the_line(route_yaml: str, message: str) -> None:
    with pytest.raises(RouteMapError) as err:
        RouteMap.from_text(BASE + route_yaml, "routes.yaml")
    assert "routes.yaml:5:" in str(err.value)
    assert message in str(err.value)


def test_duplicate_routes_are_refused() -> None:
    text = BASE + ("  - {route: 'GET /a/{id}', module: orders, verb: view, attributes: {warehouse: path.id}}\n"
                   "  - {route: 'GET /a/{id}', module: orders, verb: view, attributes: {warehouse: path.id}}\n")
    with pytest.raises(RouteMapError, match=r"routes.yaml:6: GET /a/\{id\} is already mapped at line 5"):
        RouteMap.from_text(text, "routes.yaml")


def test_version_is_required() -> None:
    with pytest.raises(RouteMapError, match="version must be 1"):
        RouteMap.from_text("routes: []\n", "r.yaml")


DRF_MAP = BASE + """  - {route: 'GET /goods/', module: orders, verb: view, kind: list, list: {rows: results}}
  - {route: 'GET /goods/{id}/', module: orders, verb: view, attributes: {warehouse: const.HF}}
  - {route: 'GET /goods', module: orders, verb: export, kind: list, list: {rows: results}}
"""


def test_trailing_slash_templates_match_exactly() -> None:
    """A Django/DRF URL ends in one '/': '/goods/' and '/goods' are different routes."""
    routes = RouteMap.from_text(DRF_MAP, "routes.yaml")
    listed = routes.match("GET", ["goods", ""])
    assert listed is not None and listed.route.verb == "view"
    bare = routes.match("GET", ["goods"])
    assert bare is not None and bare.route.verb == "export"
    item = routes.match("GET", ["goods", "12", ""])
    assert item is not None and item.params == {"id": "12"}
    assert routes.match("GET", ["goods", "12"]) is None


def test_a_parameter_never_matches_an_empty_segment() -> None:
    routes = RouteMap.from_text(DRF_MAP, "routes.yaml")
    assert routes.match("GET", ["goods", "", ""]) is None


@pytest.mark.parametrize("template", ["/goods//", "//goods/", "/goods//x/"])
def test_templates_with_empty_segments_are_refused(template: str) -> None:
    text = BASE + f"  - {{route: 'GET {template}', module: orders, verb: view, kind: list, list: {{rows: r}}}}\n"
    with pytest.raises(RouteMapError, match="routes.yaml:5: bad path template"):
        RouteMap.from_text(text, "routes.yaml")
