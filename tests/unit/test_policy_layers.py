"""Policy layers: the base layer (rules, the gateway's own data) and a deployment's (data, tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_service.builder import LayerConflict, merge_layers, tree_revision


def _layer(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_layers_merge_into_one_tree_with_the_same_revision(tmp_path: Path) -> None:
    base = _layer(tmp_path / "base", {"wms/authz/a.rego": "package wms.authz\n", "wms/base/m/data.yaml": "{}\n"})
    site = _layer(tmp_path / "site", {"wms/roles/data.yaml": "{}\n", "wms/authz/site_test.rego": "package x\n"})
    out = tmp_path / "out"
    out.mkdir()
    merge_layers((base, site), out)
    assert (out / "wms/roles/data.yaml").exists() and (out / "wms/authz/a.rego").exists()
    assert tree_revision(out) == tree_revision(base, site)


@pytest.mark.parametrize("rel", ["wms/authz/lift.rego", "wms/extra/rules.rego", "wms/base/roles/data.json"])
def test_a_deployment_layer_may_not_hold_rules_or_the_gateways_own_data(tmp_path: Path, rel: str) -> None:
    base = _layer(tmp_path / "base", {"wms/authz/a.rego": "package wms.authz\n"})
    site = _layer(tmp_path / "site", {rel: "package wms.authz\n" if rel.endswith(".rego") else "{}\n"})
    with pytest.raises(LayerConflict, match="base layer"):
        merge_layers((base, site), tmp_path / "out")


def test_a_file_in_two_layers_is_refused(tmp_path: Path) -> None:
    base = _layer(tmp_path / "base", {"wms/roles/data.yaml": "{}\n"})
    site = _layer(tmp_path / "site", {"wms/roles/data.yaml": "{}\n"})
    (tmp_path / "out").mkdir()
    with pytest.raises(LayerConflict, match="two policy layers"):
        merge_layers((base, site), tmp_path / "out")
