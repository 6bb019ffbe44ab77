"""Gateway configuration loading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from authorizer.config import ConfigError, load_config
from wmsgate.tools import REPO

pytestmark = pytest.mark.usefixtures("config_secrets")  # the shipped configs name their secrets


def test_shipped_config_loads_with_its_paths_beside_it_and_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WMSGATE_STATE", raising=False)
    cfg = load_config(REPO / "config" / "gateway.yaml")
    assert cfg.port == 8080 and cfg.oidc.audience == "wms-gateway"
    assert cfg.audit.url == f"sqlite+aiosqlite:///{REPO / '.state' / 'audit.db'}"  # relative to the file's folder
    assert cfg.keycloak_admin is not None and cfg.keycloak_admin.client_secret == "test-wmsgate_kc_admin_secret"
    assert cfg.route_map == REPO / "config" / "routes.yaml"
    strip = {h.lower() for h in cfg.strip_request_headers}
    assert {"x-wms-user", "x-wms-roles", "x-forwarded-for", "forwarded"} <= strip


def test_overrides_use_dotted_keys() -> None:
    cfg = load_config(REPO / "config" / "gateway.yaml", {"opa.timeout_seconds": 0.5, "listen.port": 9999})
    assert cfg.opa.timeout_seconds == 0.5 and cfg.port == 9999


def test_missing_section_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("oidc: {issuer: x, audience: y}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"g.yaml: opa: Field required; .*g.yaml: upstream: Field required"):
        load_config(path)


def test_credential_entries_need_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="credentials"):
        load_config(REPO / "config" / "gateway.yaml", {"upstream.credentials": [{"header": "X-T"}]})


def test_audit_spool_and_retention_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WMSGATE_STATE", "/tmp/wmsgate-state")
    cfg = load_config(REPO / "config" / "gateway.yaml", {"audit.retention_days": 400,
                                                          "audit.archive_dir": "${WMSGATE_STATE}/archive"})
    assert cfg.audit.spool_file == REPO / ".state" / "audit-spool.jsonl"
    assert cfg.audit.retention_days == 400 and cfg.audit.archive_dir == Path("/tmp/wmsgate-state/archive")
    assert cfg.audit.witness_dir is None
    witnessed = load_config(REPO / "config" / "gateway.yaml", {"audit.witness_dir": "${WMSGATE_STATE}/witness"})
    assert witnessed.audit.witness_dir == Path("/tmp/wmsgate-state/witness")


def test_retention_without_an_archive_folder_or_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WMSGATE_STATE", "/tmp/wmsgate-state")
    with pytest.raises(ConfigError, match="archive_dir"):
        load_config(REPO / "config" / "gateway.yaml", {"audit.retention_days": 30})
    with pytest.raises(ConfigError, match="signing_key_file"):
        load_config(REPO / "config" / "gateway.yaml", {"audit.retention_days": 30, "audit.archive_dir": "/tmp/a",
                                                        "audit.signing_key_file": None})
    with pytest.raises(ConfigError, match="spool_max_bytes"):
        load_config(REPO / "config" / "gateway.yaml", {"audit.spool_max_bytes": 0})


def test_wms_health_probe_is_configurable() -> None:
    """A WMS without /healthz names the path it answers on and the statuses that mean 'up'."""
    default = load_config(REPO / "config" / "gateway.yaml").upstream.health
    assert default.path == "/healthz" and default.expect_status == (200,)
    cfg = load_config(REPO / "config" / "gateway.yaml",
                      {"upstream.health": {"path": "/api/login/", "expect_status": [200, 302]}})
    assert cfg.upstream.health.path == "/api/login/" and cfg.upstream.health.expect_status == (200, 302)


@pytest.mark.parametrize("health, message", [
    ({"path": "healthz"}, r"gateway.yaml:\d+: upstream.health.path: must be a path on the WMS"),
    ({"path": "/", "expect_status": [700]}, "expect_status"),
    ({"path": "/", "status": 200}, "unknown key"),
])
def test_bad_wms_health_probe_is_refused(health: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(REPO / "config" / "gateway.yaml", {"upstream.health": health})


def test_the_management_listener_is_configured_apart_from_the_public_one() -> None:
    shipped = load_config(REPO / "config" / "gateway.yaml").management
    assert shipped is not None and (shipped.host, shipped.port) == ("127.0.0.1", 9080)
    assert load_config(REPO / "config" / "gateway.yaml", {"management": None}).management is None


@pytest.mark.parametrize("management, message", [
    ({"port": 70000}, "management.port"),
    ({"port": 9080, "path": "/metrics"}, "unknown key"),
    ("9080", "management: Input should be a valid dictionary"),
])
def test_a_bad_management_listener_is_refused(management: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(REPO / "config" / "gateway.yaml", {"management": management})


def test_an_unknown_key_is_refused_with_its_file_and_line(tmp_path: Path) -> None:
    text = (REPO / "config" / "gateway.yaml").read_text(encoding="utf-8")
    text = text.replace("  health: {path: /healthz, expect_status: [200]}",
                        "  helth: {path: /healthz, expect_status: [200]}")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.startswith("  helth:"))
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path, {"route_map": str(REPO / "config" / "routes.yaml")})
    assert f"{path}:{line}: upstream.helth: unknown key" in str(refused.value)


def test_a_wrong_type_is_refused_with_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("oidc: {issuer: http://127.0.0.1:8180/realms/wms, audience: wms-gateway}\n"
                    "opa: {url: http://127.0.0.1:8181}\n"
                    "upstream:\n  url: http://127.0.0.1:8090\n  timeout_seconds: soon\n"
                    "audit: {url: 'sqlite+aiosqlite:///a.db'}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}:5: upstream.timeout_seconds: "):
        load_config(path)


@pytest.mark.parametrize("section, variable", [
    ("keycloak_admin", "WMSGATE_KC_ADMIN_SECRET"), ("sso", "WMSGATE_SSO_CLIENT_SECRET"),
    ("alerting", "WMSGATE_ALERTING_API_TOKEN")])
def test_a_configured_feature_without_its_secret_does_not_load(
        section: str, variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(variable)
    with pytest.raises(ConfigError, match=rf"{section}\..*\$\{{{variable}\}} is not set"):
        load_config(REPO / "config" / "gateway.yaml")
    assert getattr(load_config(REPO / "config" / "gateway.yaml", {section: None}), section) is None


def test_a_tool_reading_other_settings_loads_without_the_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """`wmsgate audit search` reads the audit store's URL; it needs none of the proxy's secrets."""
    for name in ("WMSGATE_KC_ADMIN_SECRET", "WMSGATE_SSO_CLIENT_SECRET", "WMSGATE_ALERTING_API_TOKEN"):
        monkeypatch.delenv(name)
    cfg = load_config(REPO / "config" / "gateway.yaml", need_secrets=False)
    assert cfg.audit.url.endswith("/.state/audit.db")
    assert (cfg.keycloak_admin, cfg.sso, cfg.alerting) == (None, None, None)


def test_an_empty_section_takes_its_defaults_and_an_empty_tenant_is_off() -> None:
    cfg = load_config(REPO / "config" / "gateway.yaml", {"upstream.health": None, "revocation": None,
                                                          "approvals": None, "trust": None, "upstream.tenant": {}})
    assert cfg.upstream.health.path == "/healthz" and cfg.revocation_refresh_seconds == 0.5
    assert cfg.approval_sweep_seconds == 5.0 and cfg.upstream.tenant is None and cfg.trust_ca_file is None


def test_an_unreadable_secret_file_does_not_stop_a_tool_but_stops_the_proxy(tmp_path: Path) -> None:
    overrides = {"sso.client_secret": None, "sso.client_secret_file": str(tmp_path / "missing.secret")}
    assert load_config(REPO / "config" / "gateway.yaml", overrides, need_secrets=False).sso is None
    with pytest.raises(ConfigError, match="sso.client_secret_file cannot be read"):
        load_config(REPO / "config" / "gateway.yaml", overrides)


def test_routes_check_runs_from_the_command_line() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "routes", "check", "--config",
                          str(REPO / "config" / "gateway.yaml")], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


GATEWAY = REPO / "config" / "gateway.yaml"


@pytest.mark.parametrize("overrides, where", [
    ({"audit.retention_days": 30}, r"gateway.yaml:\d+: audit: retention_days needs archive_dir"),
    ({"audit.spool_max_bytes": 0}, r"gateway.yaml:\d+: audit.spool_max_bytes: Input should be greater than 0"),
    ({"audit.witness_dir": "/mnt/witness", "audit.signing_key_file": None},
     r"gateway.yaml:\d+: audit: witness_dir needs signing_key_file"),
    ({"upstream.credentials": [{"header": "X-T"}]}, r"upstream.credentials.0: needs exactly one of"),
    ({"upstream.credentials": [{"header": "X-T", "file": "x", "format": "Token"}]},
     r"upstream.credentials.0.format: must contain \{secret\}"),
    ({"upstream.answers": {"origins": ["http://wms.internal:8000/api"]}},
     r"upstream.answers.origins: 'http://wms.internal:8000/api' must be scheme://host\[:port\]"),
    ({"upstream.answers": {"status_field": ""}}, r"upstream.answers.status_field"),
    ({"upstream.tenant": {"dimension": "shelf"}}, r"upstream.tenant.dimension: 'shelf' is not one of"),
    ({"public_url": "https://gw.example.com/wms"}, r"gateway.yaml: public_url: .* must be scheme://host"),
    ({"sso.public_url": "gw.example.com"}, r"gateway.yaml:\d+: sso.public_url: String should match"),
    ({"oidc.issuer": "http://kc.example.com/realms/wms"},
     r"gateway.yaml:\d+: oidc.issuer: http://kc.example.com/realms/wms must be https in production mode"),
])
def test_every_check_names_the_file_line_and_key(overrides: dict[str, object], where: str) -> None:
    """Checks beyond the types (one source per credential, origins, retention, production
    issuer...) are refused like type errors: with the file, the line and the dotted key."""
    with pytest.raises(ConfigError, match=where):
        load_config(GATEWAY, overrides)


@pytest.mark.parametrize("overrides, key", [
    ({"listen.port": True}, "listen.port"),          # YAML `port: true` is not port 1
    ({"listen.port": "8080"}, "listen.port"),        # nor is a quoted number a number
    ({"opa.timeout_seconds": "2"}, "opa.timeout_seconds"),
    ({"opa.compare_with_sidecar": 1}, "opa.compare_with_sidecar"),
    ({"upstream.identity_headers": {"X-Staff": 12}}, "upstream.identity_headers.X-Staff"),
])
def test_types_are_strict(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(GATEWAY, overrides)


def test_numeric_warehouse_codes_must_be_quoted(tmp_path: Path) -> None:
    """YAML reads `007:` as the number 7: a per-warehouse credential keyed so is refused, saying why."""
    with pytest.raises(ConfigError, match=r"upstream.credentials.0.per_warehouse: warehouse codes are text: quote 7"):
        load_config(GATEWAY, {"upstream.credentials": [{"header": "T", "per_warehouse": {7: "x"}}]})


def test_runtime_settings_take_their_defaults_from_the_schema() -> None:
    """A default is written once (authorizer/config_schema.py): the runtime settings built in code
    (tests, tools) get the same values as a file that leaves the key out."""
    from authorizer import config_schema as schema
    from authorizer.config import AuditSettings, OpaSettings, SsoSettings, UpstreamSettings

    cfg = load_config(GATEWAY, {"opa.evaluation": "sidecar"})
    assert OpaSettings(url=cfg.opa.url, policy_status_url=cfg.opa.policy_status_url, wasm_bundle_url=None) == \
        OpaSettings(url=cfg.opa.url, policy_status_url=cfg.opa.policy_status_url, wasm_bundle_url=None,
                    timeout_seconds=schema.OpaFile.model_fields["timeout_seconds"].default)
    built = UpstreamSettings(url="http://wms")
    assert built.timeout_seconds == schema.UpstreamFile.model_fields["timeout_seconds"].default
    assert built.identity_headers == schema.default(schema.UpstreamFile, "identity_headers")
    assert built.health.expect_status == (200,) and built.health.path == "/healthz"
    assert AuditSettings(url="x").batch_size == schema.AuditFile.model_fields["batch_size"].default
    assert SsoSettings("c", "s", "https://gw").session_idle_seconds == \
        schema.SsoFile.model_fields["session_idle_minutes"].default * 60
