"""Fronting a WMS the gateway was not written for (issue "Front any real WMS").

A Django/DRF-style WMS (tests/fixtures/drf_wms: trailing slashes, one token per warehouse
tenant, numeric operator ids, nested objects, errors inside 200 bodies, a debug 500 page
echoing its credential, filterable masked fields) is fronted only through a folder made by
``wmsgate init`` and ``wmsgate routes import-openapi`` plus the configuration edits a
warehouse IT team makes (written out below, as docs/onboarding.md describes them), then
``wmsgate up``: no code specific to it. Keycloak is the test stack's (a second realm);
OPA, the bundle service, the alerting service and the proxy are the folder's own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fixtures.drf_wms.app import TENANT_TOKENS
from tests.support.stack import STATE, AccessLog, Stack, assert_refused
from wmsgate.tools import REPO

OFFSET = 15000
WMS_PORT = 8090 + OFFSET
PROXY = f"http://127.0.0.1:{8080 + OFFSET}"
REALM = "acme-wms"
PASSWORD = "acme-trial-pw-1"
WMSGATE = [sys.executable, "-m", "wmsgate.cli"]


@dataclass
class Site:
    """The fronted fixture WMS: its deployment folder, the WMS's access log, tokens."""

    folder: Path
    wms_log: AccessLog
    issuer: str

    def token(self, username: str) -> str:
        resp = httpx.post(f"{self.issuer}/protocol/openid-connect/token", timeout=30, data={
            "grant_type": "password", "client_id": f"{REALM}-cli", "username": username, "password": PASSWORD})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    def client(self, username: str) -> httpx.Client:
        return httpx.Client(base_url=PROXY, headers={"Authorization": f"Bearer {self.token(username)}"}, timeout=30)

    def audit(self, decision_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The folder's own audit trail (its SQLite store), waiting for the writer."""
        deadline = time.monotonic() + timeout
        while True:
            with sqlite3.connect(self.folder / "state" / "audit.db") as db:
                db.row_factory = sqlite3.Row
                row = db.execute("SELECT * FROM audit_records WHERE decision_id = ?", (decision_id,)).fetchone()
            if row is not None:
                record = dict(row)
                record["detail"] = json.loads(record["detail"] or "{}")
                return record
            assert time.monotonic() < deadline, f"no audit record {decision_id}"
            time.sleep(0.1)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*WMSGATE, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def _edit_yaml(path: Path, change: Any) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _onboard(folder: Path, keycloak_url: str) -> None:
    """The edits of docs/onboarding.md, step by step, for this WMS."""
    # Step: credentials and identity the WMS expects (gateway.yaml).
    for wh, token in TENANT_TOKENS.items():
        (folder / "secrets" / f"wms-token-{wh}").write_text(token + "\n", encoding="utf-8")

    def gateway(cfg: dict[str, Any]) -> None:
        cfg["oidc"]["issuer"] = f"{keycloak_url}/realms/{REALM}"  # this machine's Keycloak already runs
        cfg["oidc"]["leeway_seconds"] = 1
        cfg["enforcement"] = "enforce"
        cfg["upstream"]["identity_headers"]["operator"] = "{attr:wms_staff_id}"
        cfg["upstream"]["answers"]["status_field"] = "status_code"
        cfg["audit"]["checkpoint_every_seconds"] = 1
    _edit_yaml(folder / "gateway.yaml", gateway)
    _edit_yaml(folder / "alerting.yaml", lambda cfg: cfg["keycloak"].update(url=keycloak_url))

    # Step: decide the drafted routes marked TODO, and the WMS's conventions per route.
    def routes(doc: dict[str, Any]) -> None:
        by_key = {f"{r['route']}": r for r in doc["routes"]}
        by_key["POST /cyclecount/qtyconfirm/"].update(module="cyclecount", verb="count")
        by_key["GET /goods/"]["query"] = {"allow": ["page", "max_page", "goods_code", "goods_name__icontains",
                                                    "goods_cost__gt", "goods_cost__lt", "ordering"]}
        by_key["GET /goods/file/"]["columns"] = {"商品编码": "goods_code", "商品成本": "goods_cost"}
        by_key["POST /asn/list/"]["body_identity"] = {"creater": "{username}"}
        by_key["GET /dn/list/{id}/"]["enforcement"] = "report"  # still being rolled out
    _edit_yaml(folder / "routes.yaml", routes)

    # Step: the deployment's policy layer (roles, masks) beside the base layer.
    def roles(doc: dict[str, Any]) -> None:
        doc["staff"]["permissions"] = ["portal:view", "goods:view", "goods:create", "goods:export", "asn:view",
                                       "asn:create", "dn:view", "stock:view", "cyclecount:count"]
        doc["manager"]["permissions"] += ["goods_cost:view", "contacts:view"]
        doc["receiver"] = {"title": {"zh-CN": "收货员", "en": "Receiver"}, "permissions": ["asn:view", "asn:create"]}
    _edit_yaml(folder / "policy" / "wms" / "roles" / "data.yaml", roles)
    _edit_yaml(folder / "policy" / "wms" / "modules" / "data.yaml", lambda doc: doc.update(
        cyclecount={"title": {"zh-CN": "盘点", "en": "Cycle counts"}, "dimensions": ["warehouse"]},
        goods_cost={"title": {"zh-CN": "商品成本", "en": "Goods cost"}, "dimensions": ["warehouse"]},
        contacts={"title": {"zh-CN": "联系方式", "en": "Contact data"}, "dimensions": ["warehouse"]}))
    (folder / "policy" / "wms" / "masks" / "data.yaml").write_text(yaml.safe_dump({"goods": [
        {"permission": "goods_cost:view", "fields": ["goods_cost"]},
        {"permission": "contacts:view", "fields": ["**.phone"]}]}), encoding="utf-8")

    # Step: the realm: codes, the staff-id attribute, people for the trial.
    def realm(doc: dict[str, Any]) -> None:
        doc["roles"]["receiver"] = {"zh-CN": "收货员", "en": "Receiver"}
        doc["attributes"] = {"wms_staff_id": {"zh-CN": "WMS 员工编号", "en": "WMS staff id", "multivalued": True}}
        doc["users"] = [
            {"username": "clerk.hf", "password": PASSWORD, "roles": ["staff"], "warehouse": ["HF"],
             "attributes": {"wms_staff_id": ["HF:12"]}},
            {"username": "manager", "password": PASSWORD, "roles": ["manager", "staff"], "warehouse": ["*"],
             "attributes": {"wms_staff_id": ["HF:13", "SH:7"]}},
            {"username": "nostaff.hf", "password": PASSWORD, "roles": ["staff"], "warehouse": ["HF"]},
            {"username": "receiver.hf", "password": PASSWORD, "roles": ["receiver"], "warehouse": ["HF"],
             "attributes": {"wms_staff_id": ["HF:13"]}},
        ]
    _edit_yaml(folder / "realm.yaml", realm)


@pytest.fixture(scope="module")
def site(stack: Stack) -> Iterator[Site]:
    """The fixture WMS and a deployment folder for it, made and run with the real CLI."""
    root = STATE / "front-any-wms"
    folder = root / "acme"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    wms_log = root / "wms-access.log"
    wms = subprocess.Popen([sys.executable, "-m", "tests.fixtures.drf_wms", "--port", str(WMS_PORT),
                            "--access-log", str(wms_log)], cwd=REPO, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=(root / "wms.log").open("wb"))
    up: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                spec = httpx.get(f"http://127.0.0.1:{WMS_PORT}/api/openapi.json", timeout=2).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the fixture WMS did not start"
                time.sleep(0.2)
        (root / "openapi.json").write_text(json.dumps(spec), encoding="utf-8")
        made = subprocess.run([*WMSGATE, "init", str(folder), "--wms-url", f"http://127.0.0.1:{WMS_PORT}",
                               "--realm", REALM, "--warehouses", "HF,SH", "--openapi", str(root / "openapi.json"),
                               "--tenant-per-warehouse", "--port-offset", str(OFFSET)],
                              cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
        assert made.returncode == 0, made.stderr
        assert "TODO(wmsgate)" in (folder / "routes.yaml").read_text(encoding="utf-8")
        undecided = subprocess.run([*WMSGATE, "routes", "check", "--config", str(folder / "gateway.yaml")],
                                   cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
        assert undecided.returncode == 1 and "undecided" in undecided.stdout  # the TODOs are not ignored
        _onboard(folder, stack.stack.keycloak_url)
        checked = subprocess.run([*WMSGATE, "policy", "check", "--policy", str(folder / "policy")], cwd=REPO,
                                 capture_output=True, text=True, timeout=120, check=False)
        assert checked.returncode == 0, checked.stderr
        routes = subprocess.run([*WMSGATE, "routes", "check", "--config", str(folder / "gateway.yaml")], cwd=REPO,
                                capture_output=True, text=True, timeout=60, check=False)
        assert routes.returncode == 0, routes.stdout + routes.stderr
        up = subprocess.Popen([*WMSGATE, "up", "--config", str(folder), "--keycloak-url", stack.stack.keycloak_url,
                               "--replace-realm"], cwd=REPO, start_new_session=True,
                              stdout=(root / "up.log").open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while "wmsgate is up" not in (root / "up.log").read_text(encoding="utf-8", errors="replace"):
            assert up.poll() is None, (root / "up.log").read_text(encoding="utf-8", errors="replace")[-4000:]
            assert time.monotonic() < deadline, "wmsgate up did not finish starting"
            time.sleep(0.5)
        yield Site(folder, AccessLog(wms_log), f"{stack.stack.keycloak_url}/realms/{REALM}")
    finally:
        for proc in (up, wms):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def test_health_probes_the_wms_on_its_own_path(site: Site) -> None:
    health = httpx.get(f"{PROXY}/_gateway/health", timeout=10).json()
    assert health["checks"]["wms"] == {"ok": True, "status": 200}, health
    assert health["status"] == "ok", health


def test_trailing_slash_paths_match_exactly_and_empty_segments_stay_refused(site: Site) -> None:
    with site.client("clerk.hf") as clerk:
        assert clerk.get("/goods/").status_code == 200
        assert_refused(clerk.get("/goods"), 403, "route_not_mapped")
        assert_refused(clerk.get("/goods//"), 400, "empty_segment")
        assert clerk.get("/goods/3/").status_code == 200


def test_a_caller_with_one_warehouse_runs_in_its_tenant_without_naming_it(site: Site) -> None:
    mark = site.wms_log.mark()
    with site.client("clerk.hf") as clerk:
        page = clerk.get("/goods/")
    assert page.status_code == 200
    assert page.json()["results"][0]["goods_code"].startswith("H")
    [seen] = site.wms_log.since(mark)
    assert seen["token"] == TENANT_TOKENS["HF"] and "warehouse" not in seen["query"]
    assert site.audit(page.headers["X-Decision-Id"])["warehouse"] == "HF"


def test_a_caller_with_several_warehouses_names_one_and_it_is_never_forwarded(site: Site) -> None:
    with site.client("manager") as manager:
        assert_refused(manager.get("/goods/"), 400, "tenant_required")
        mark = site.wms_log.mark()
        sh = manager.get("/goods/", params={"warehouse": "SH", "goods_code": "S0001"})
    assert sh.status_code == 200 and [g["goods_code"] for g in sh.json()["results"]] == ["S0001"]
    [seen] = site.wms_log.since(mark)
    assert seen["token"] == TENANT_TOKENS["SH"] and seen["query"] == "goods_code=S0001"


def test_a_tenant_outside_the_callers_scope_is_refused(site: Site) -> None:
    mark = site.wms_log.mark()
    with site.client("clerk.hf") as clerk:
        body = assert_refused(clerk.get("/goods/", params={"warehouse": "SH"}), 403, "tenant_out_of_scope")
        in_report_mode = assert_refused(clerk.get("/dn/list/2/?warehouse=SH"), 403, "tenant_out_of_scope")
    assert site.wms_log.since(mark) == []  # SH's credential never went out for an HF clerk
    for refused in (body, in_report_mode):
        record = site.audit(refused["decision_id"])
        assert (record["decision"], record["warehouse"]) == ("deny", "SH")


def test_the_wms_gets_the_callers_staff_id_of_that_tenant_and_the_creator_is_forced(site: Site) -> None:
    mark = site.wms_log.mark()
    with site.client("clerk.hf") as clerk:
        created = clerk.post("/asn/list/", json={"asn_code": "ASN-T1", "supplier": "s", "creater": "admin"})
    with site.client("manager") as manager:
        in_sh = manager.post("/asn/list/?warehouse=SH", json={"asn_code": "ASN-T2"})
    assert created.status_code == 200 and created.json()["operator_id"] == 12
    assert created.json()["creater"] == "clerk.hf"
    assert in_sh.json()["operator_id"] == 7 and in_sh.json()["creater"] == "manager"
    first, second = site.wms_log.since(mark)
    assert first["operator"] == "12" and json.loads(first["body"])["creater"] == "clerk.hf"
    assert second["operator"] == "7" and second["token"] == TENANT_TOKENS["SH"]
    assert site.audit(created.headers["X-Decision-Id"])["detail"]["body_identity_set"] == ["creater"]


def test_a_caller_without_a_staff_id_is_refused_before_the_wms(site: Site) -> None:
    mark = site.wms_log.mark()
    with site.client("nostaff.hf") as nobody:
        body = assert_refused(nobody.post("/asn/list/", json={"asn_code": "ASN-T3"}), 403, "no_caller_identity")
        in_report_mode = assert_refused(nobody.get("/dn/list/2/"), 403, "no_caller_identity")
    assert site.wms_log.since(mark) == []
    for refused in (body, in_report_mode):  # the policy allowed, the gateway refused: the record says deny
        record = site.audit(refused["decision_id"])
        assert (record["decision"], record["reason_code"]) == ("deny", "no_caller_identity")


def test_filters_and_orderings_on_masked_fields_are_refused(site: Site) -> None:
    mark = site.wms_log.mark()
    with site.client("clerk.hf") as clerk:
        assert_refused(clerk.get("/goods/", params={"goods_cost__gt": "5"}), 403, "filter_on_masked_field")
        assert_refused(clerk.get("/goods/", params={"ordering": "-goods_cost"}), 403, "filter_on_masked_field")
        assert_refused(clerk.get("/goods/", params={"format": "api"}), 400, "query_parameter_not_allowed")
    assert site.wms_log.since(mark) == []
    with site.client("manager") as manager:  # sees the cost: may filter by it
        rows = manager.get("/goods/", params={"warehouse": "HF", "goods_cost__gt": "8"}).json()["results"]
    assert rows and all(r["goods_cost"] > 8 for r in rows)


def test_nested_and_anywhere_masks_apply_to_items_lists_and_csv_labels(site: Site) -> None:
    with site.client("clerk.hf") as clerk:
        item = clerk.get("/goods/3/").json()
        notes = clerk.get("/dn/list/").json()["results"]
        csv_text = clerk.get("/goods/file/").text
    assert item["goods_cost"] is None and item["supplier_detail"]["phone"] == "***"
    assert item["supplier_detail"]["name"] and item["goods_price"] is not None
    assert all(n["customer_detail"]["phone"] == "***" for n in notes)
    assert all(c["phone"] == "***" for n in notes for c in n["customer_detail"]["contacts"])
    header, *rows = csv_text.strip().splitlines()
    assert header.split(",")[3] == "商品成本" and rows and all(r.split(",")[3] == "***" for r in rows)
    with site.client("manager") as manager:
        seen = manager.get("/goods/3/", params={"warehouse": "HF"}).json()
    assert isinstance(seen["goods_cost"], float) and seen["supplier_detail"]["phone"].startswith("138")


def test_masks_apply_to_a_created_records_answer_and_its_location_points_at_the_gateway(site: Site) -> None:
    with site.client("clerk.hf") as clerk:
        created = clerk.post("/goods/", json={"goods_code": "HNEW1", "goods_name": "新品", "goods_cost": 9.5})
    assert created.status_code == 201
    assert created.json()["goods_cost"] is None
    assert created.headers["Location"].startswith(f"{PROXY}/goods/")


def test_json_links_point_at_the_gateway_and_banners_are_dropped(site: Site) -> None:
    with site.client("clerk.hf") as clerk:
        page = clerk.get("/goods/", params={"max_page": "5"})
    assert page.json()["next"].startswith(f"{PROXY}/goods/?")
    with site.client("manager") as manager:  # a tenant named by the caller stays on the next page
        sh = manager.get("/goods/", params={"warehouse": "SH", "max_page": "5"}).json()
        assert sh["next"].endswith("&warehouse=SH")
        assert manager.get(sh["next"]).json()["results"][0]["goods_code"].startswith("S")
    assert "WSGIServer" not in page.headers.get("Server", "") and "X-Powered-By" not in page.headers
    assert site.audit(page.headers["X-Decision-Id"])["detail"]["links_rewritten"] == 1


def test_a_failure_inside_a_200_is_audited_as_the_real_outcome(site: Site) -> None:
    with site.client("clerk.hf") as clerk:
        missing = clerk.get("/goods/999999/")
    assert missing.status_code == 200 and missing.json()["status_code"] == 404
    record = site.audit(missing.headers["X-Decision-Id"])
    assert record["upstream_status"] == 404
    assert record["detail"]["upstream_http_status"] == 200 and record["detail"]["upstream_failure_in_body"]


def test_a_debug_500_page_never_reaches_the_client(site: Site) -> None:
    with site.client("clerk.hf") as clerk:
        broken = clerk.get("/stock/bin/")
    assert broken.status_code == 500
    assert TENANT_TOKENS["HF"] not in broken.text and "OperationalError" not in broken.text
    body = assert_refused(broken, 500, "upstream_error")
    record = site.audit(body["decision_id"])
    assert record["upstream_status"] == 500 and record["decision"] == "allow"
    assert record["detail"]["upstream_body"] == "withheld"


def test_a_route_in_report_mode_forwards_and_records_would_deny_and_the_report_groups_it(site: Site) -> None:
    with site.client("receiver.hf") as receiver:
        shadowed = receiver.get("/dn/list/2/")  # receivers may not see delivery notes: would be refused
        enforced = receiver.get("/dn/list/")     # the list route enforces
    assert shadowed.status_code == 200 and shadowed.headers["X-Gateway-Shadow"] == "would_deny"
    assert shadowed.json()["customer_detail"]["phone"] == "***"  # report mode never shows more than enforce
    record = site.audit(shadowed.headers["X-Decision-Id"])
    assert (record["decision"], record["reason_code"]) == ("would_deny", "missing_permission")
    assert record["detail"]["shadow"] == {"would_status": 403, "would_reason": "missing_permission",
                                          "route": "GET /dn/list/{id}/"}
    assert_refused(enforced, 403, "missing_permission")
    report = site.cli("shadow", "report", "--config", str(site.folder / "gateway.yaml"), "--since", "1h", "--json")
    assert report.returncode == 0, report.stderr
    groups = [json.loads(line) for line in report.stdout.splitlines()]
    assert {"route": "GET /dn/list/{id}/", "role": "receiver", "reason": "missing_permission"}.items() <= \
        next(g for g in groups if g["role"] == "receiver").items()


def test_switching_a_route_between_report_and_enforce_is_audited(site: Site) -> None:
    with sqlite3.connect(site.folder / "state" / "audit.db") as db:
        changes = db.execute("SELECT resource_id, detail FROM audit_records WHERE reason_code = "
                             "'enforcement_mode_changed'").fetchall()
    # the first start is one record: the default, and the routes that set their own mode
    assert [json.loads(d) for r, d in changes if r == "*"] == [
        {"route": "*", "from": "none", "to": "enforce", "routes": {"GET /dn/list/{id}/": "report"}}]
    # the team switches the route to enforce: a second proxy on the same store with the edited map
    routes = yaml.safe_load((site.folder / "routes.yaml").read_text(encoding="utf-8"))
    for route in routes["routes"]:
        route.pop("enforcement", None)
    (site.folder / "routes-enforced.yaml").write_text(yaml.safe_dump(routes, allow_unicode=True), encoding="utf-8")
    cfg = yaml.safe_load((site.folder / "gateway.yaml").read_text(encoding="utf-8"))
    cfg["route_map"] = "routes-enforced.yaml"
    cfg["audit"]["spool_file"] = "state/audit-spool.enforced.jsonl"
    (site.folder / "gateway-enforced.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    port = 8080 + OFFSET + 5
    proxy = subprocess.Popen([*WMSGATE, "proxy", "--config", str(site.folder / "gateway-enforced.yaml"), "--port",
                              str(port)], cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/_gateway/health", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proxy.poll() is None, "the second proxy did not start"
                time.sleep(0.3)
        token = site.token("receiver.hf")
        refused = httpx.get(f"http://127.0.0.1:{port}/dn/list/2/", headers={"Authorization": f"Bearer {token}"})
        assert_refused(refused, 403, "missing_permission")
    finally:
        os.killpg(proxy.pid, signal.SIGTERM)
        proxy.wait(timeout=30)
    with sqlite3.connect(site.folder / "state" / "audit.db") as db:
        later = db.execute("SELECT detail FROM audit_records WHERE reason_code = 'enforcement_mode_changed' "
                           "AND resource_id = 'GET /dn/list/{id}/'").fetchall()
    assert {"route": "GET /dn/list/{id}/", "from": "report", "to": "enforce"} in [json.loads(d) for (d,) in later]


def test_routes_check_lists_traffic_the_map_does_not_cover(site: Site) -> None:
    with site.client("clerk.hf") as clerk:
        refused = assert_refused(clerk.get("/warehouse/list/"), 403, "route_not_mapped")
    site.audit(refused["decision_id"])
    found = site.cli("routes", "check", "--config", str(site.folder / "gateway.yaml"), "--from-audit", "1h",
                     "--json")
    assert found.returncode == 1, found.stdout + found.stderr
    report = json.loads(found.stdout.splitlines()[-1])
    assert any(e["route"] == "GET /warehouse/list/" for e in report["unmapped"])
    assert all(e["route"] != "GET /goods/" for e in report["unmapped"])


def test_policy_explain_chooses_the_tenant_as_the_proxy_does(site: Site) -> None:
    def explain(path: str) -> dict[str, Any]:
        done = site.cli("policy", "explain", "--config", str(site.folder / "gateway.yaml"), "--user", "clerk.hf",
                        "--method", "GET", "--path", path, "--json")
        assert done.returncode in (0, 1), done.stderr
        return dict(json.loads(done.stdout))

    own = explain("/goods/3/")
    assert own["tenant"] == "HF" and own["decision"]["allow"] is True
    other = explain("/goods/?warehouse=SH")
    assert other["refused_at"] == "tenant" and other["tenant"]["code"] == "tenant_out_of_scope"
    masked = explain("/goods/?ordering=-goods_cost")
    assert masked["decision"]["allow"] is True and masked["refused_at"] == "masked_lookup"
    assert explain("/goods/?format=api")["refused_at"] == "query"
