"""Gateway configuration loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from authorizer.config import ConfigError, load_config
from wmsgate.tools import REPO


def test_shipped_config_loads_with_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WMSGATE_STATE", "/tmp/wmsgate-state")
    cfg = load_config(REPO / "config" / "gateway.yaml")
    assert cfg.port == 8080 and cfg.oidc.audience == "wms-gateway"
    assert cfg.audit.url == "sqlite+aiosqlite:////tmp/wmsgate-state/audit.db"
    assert cfg.route_map == REPO / "config" / "routes.yaml"
    strip = {h.lower() for h in cfg.strip_request_headers}
    assert {"x-wms-user", "x-wms-roles", "x-forwarded-for", "forwarded"} <= strip


def test_overrides_use_dotted_keys() -> None:
    cfg = load_config(REPO / "config" / "gateway.yaml", {"opa.timeout_seconds": 0.5, "listen.port": 9999})
    assert cfg.opa.timeout_seconds == 0.5 and cfg.port == 9999


def test_missing_section_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("oidc: {issuer: x, audience: y}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="section 'opa' is missing"):
        load_config(path)


def test_credential_entries_need_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="credentials"):
        load_config(REPO / "config" / "gateway.yaml", {"upstream.credentials": [{"header": "X-T"}]})
