"""deploy/compose/ checked without a container engine: the Compose Specification's JSON schema,
files it mounts and builds from, the configs it mounts (loaded by the real loaders), and the
pinned versions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from alerting.config import load_alerting_config
from authorizer.config import load_config
from wmsgate.tools import REPO, compose_schema, pinned_versions

pytestmark = pytest.mark.usefixtures("config_secrets")  # the shipped configs name their secrets

COMPOSE_DIR = REPO / "deploy" / "compose"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8"))


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(compose_schema().read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(_compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_a_broken_compose_file_is_caught_by_the_same_check() -> None:
    schema = json.loads(compose_schema().read_text(encoding="utf-8"))
    broken = _compose()
    broken["services"]["proxy"]["ports"] = {"8080": 8080}  # a mapping where a list belongs
    broken["services"]["proxy"]["restart_policy"] = "always"  # no such service key
    assert len(list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))) >= 2


def test_every_build_and_bind_mount_points_at_a_real_file() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (COMPOSE_DIR / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} is missing"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).resolve().exists(), f"{name}: mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name}: named volume {source} is not declared"
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: secret {secret} is not declared"


def test_the_mounted_configs_load_with_the_real_loaders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("WMSGATE_DB_PASSWORD", "WMSGATE_KC_ADMIN_SECRET", "WMSGATE_SSO_CLIENT_SECRET", "WMSGATE_EVENTS_SECRET",
                "WMSGATE_ALERTING_CLIENT_SECRET"):
        monkeypatch.setenv(var, "x-secret")
    monkeypatch.setenv("WMSGATE_ALERTING_API_TOKEN", "t" * 24)
    gateway = load_config(COMPOSE_DIR / "gateway.yaml")
    assert gateway.audit.url.startswith("postgresql+asyncpg://wmsgate:x-secret@postgres")
    assert gateway.oidc.issuer == "http://keycloak:8180/realms/wms" and gateway.alerting is not None
    alerting = load_alerting_config(COMPOSE_DIR / "alerting.yaml")
    assert alerting.keycloak is not None and alerting.keycloak.url == "http://keycloak:8180"
    opa = yaml.safe_load((COMPOSE_DIR / "opa-config.yaml").read_text(encoding="utf-8"))
    assert opa["bundles"]["wms"]["signing"]["keyid"] in opa["keys"]
    keycloak_command = " ".join(_compose()["services"]["keycloak"]["command"])
    assert "--hostname=http://keycloak:8180" in keycloak_command  # the issuer the proxy expects


def test_images_use_the_pinned_versions() -> None:
    versions = pinned_versions()
    python_image = (REPO / "deploy" / "docker" / "python.Dockerfile").read_text(encoding="utf-8")
    keycloak_image = (REPO / "deploy" / "docker" / "keycloak.Dockerfile").read_text(encoding="utf-8")
    opa = versions["OPA_VERSION"].lstrip("v")
    assert re.search(rf"ARG OPA_VERSION={re.escape(opa)}\b", python_image)
    assert re.search(rf"ARG KEYCLOAK_VERSION={re.escape(versions['KEYCLOAK_VERSION'])}\b", keycloak_image)
    assert _compose()["services"]["opa"]["image"] == f"openpolicyagent/opa:{opa}-static"
