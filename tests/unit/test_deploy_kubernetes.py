"""deploy/kubernetes/ checked without a cluster: ``helm lint``, ``helm template`` with default
and other values, kubeconform against the Kubernetes API schemas (strict, the schemas the
kubernetes-validate package ships), and what the chart promises (HPA, PDB, probes, secrets
by reference)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from wmsgate.tools import REPO, cache_dir, go_tool

CHART = REPO / "deploy" / "kubernetes" / "wmsgate"
KUBERNETES_VERSION = "1.33.0"


def kubeconform_schemas() -> Path:
    """The Kubernetes JSON schemas of the kubernetes-validate package, copied (once, into the
    cache) with their ``/api/_definitions.json`` references made ``file://`` URLs, which is how
    kubeconform can follow them offline. Returns the folder holding ``v<version>-local-strict/``."""
    root = cache_dir() / f"k8s-schemas-{version('kubernetes-validate')}"
    name = f"v{KUBERNETES_VERSION}-local-strict"
    if (root / name / "_definitions.json").is_file():
        return root
    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / name
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root, prefix=".part-"))
    for schema in source.glob("*.json"):
        text = schema.read_text(encoding="utf-8")
        (work / schema.name).write_text(text.replace('"/api/_definitions.json#',
                                                     f'"file://{root / name}/_definitions.json#'), encoding="utf-8")
    os.replace(work, root / name)
    return root


def _run(*argv: str) -> str:
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, f"{' '.join(argv)}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def render(*extra: str) -> str:
    """The chart rendered by ``helm template`` (release ``wms``)."""
    return _run(str(go_tool("helm")), "template", "wms", str(CHART), "--kube-version", KUBERNETES_VERSION, *extra)


def objects(manifests: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object."""
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(manifests) if d}


def schema_location() -> str:
    """kubeconform's ``-schema-location`` template for the local schemas."""
    return (f"{kubeconform_schemas()}/{{{{ .NormalizedKubernetesVersion }}}}-local{{{{ .StrictSuffix }}}}/"
            "{{ .ResourceKind }}{{ .KindSuffix }}.json")


def kubeconform(manifests: str, tmp_path: Path) -> str:
    """Validate strictly against the Kubernetes schemas (the Keycloak operator's CR is checked below)."""
    path = tmp_path / "rendered.yaml"
    path.write_text(manifests, encoding="utf-8")
    location = schema_location()
    return _run(str(go_tool("kubeconform")), "-strict", "-summary", "-kubernetes-version", KUBERNETES_VERSION,
                "-schema-location", location, "-skip", "Keycloak", str(path))


def test_the_chart_lints() -> None:
    _run(str(go_tool("helm")), "lint", "--strict", str(CHART))


@pytest.mark.parametrize("extra", [(), ("--set-file", "gateway.routesYaml=config/routes.yaml", "--set",
                                        "alerting.enabled=false,proxy.autoscaling.enabled=false")])
def test_rendered_manifests_are_valid_kubernetes_objects(tmp_path: Path, extra: tuple[str, ...]) -> None:
    summary = kubeconform(render(*extra), tmp_path)
    assert "Invalid: 0, Errors: 0" in summary, summary


def test_kubeconform_catches_a_broken_manifest(tmp_path: Path) -> None:
    broken = render().replace("minAvailable: 1", "minAvailable: [1]", 1)
    path = tmp_path / "broken.yaml"
    path.write_text(broken, encoding="utf-8")
    location = schema_location()
    out = subprocess.run([str(go_tool("kubeconform")), "-strict", "-kubernetes-version", KUBERNETES_VERSION,
                          "-schema-location", location, "-skip", "Keycloak", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "PodDisruptionBudget" in out.stdout


def test_the_proxy_scales_with_an_opa_sidecar_probes_and_secrets_by_reference() -> None:
    objs = objects(render())
    proxy = objs[("Deployment", "wms-wmsgate-proxy")]
    pod = proxy["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"proxy", "opa"}
    assert "--workers" in containers["proxy"]["command"]
    for container in pod["containers"]:
        assert container["readinessProbe"] and container["livenessProbe"], container["name"]
        for env in container.get("env", []):
            assert "secretKeyRef" in env["valueFrom"], f"{env['name']} must come from a Secret"
    assert containers["proxy"]["readinessProbe"]["httpGet"]["path"] == "/_gateway/health"
    hpa = objs[("HorizontalPodAutoscaler", "wms-wmsgate-proxy")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "wms-wmsgate-proxy" and hpa["spec"]["minReplicas"] >= 2
    pdb = objs[("PodDisruptionBudget", "wms-wmsgate-proxy")]
    assert pdb["spec"]["selector"]["matchLabels"] == proxy["spec"]["selector"]["matchLabels"]
    assert "replicas" not in proxy["spec"]  # the HPA owns the count
    gateway = yaml.safe_load(objs[("ConfigMap", "wms-wmsgate-config")]["data"]["gateway.yaml"])
    assert gateway["opa"]["url"] == "http://127.0.0.1:8181" and "${WMSGATE_DB_PASSWORD}" in gateway["audit"]["url"]
    opa = yaml.safe_load(objs[("ConfigMap", "wms-wmsgate-config")]["data"]["opa.yaml"])
    assert opa["bundles"]["wms"]["signing"]["keyid"] in opa["keys"]
    keycloak = objs[("Keycloak", "wms-wmsgate-keycloak")]
    assert keycloak["apiVersion"] == "k8s.keycloak.org/v2alpha1" and keycloak["spec"]["db"]["vendor"] == "postgres"
    assert {o["name"] for o in keycloak["spec"]["additionalOptions"]} >= {
        "spi-events-listener--wms-gateway-events--url", "spi-events-listener--wms-gateway-events--secret"}
    alerting = objs[("Deployment", "wms-wmsgate-alerting")]
    assert alerting["spec"]["replicas"] == 1 and alerting["spec"]["strategy"]["type"] == "Recreate"


def test_own_routes_go_into_the_config_map() -> None:
    objs = objects(render("--set-file", "gateway.routesYaml=config/routes.yaml"))
    data = objs[("ConfigMap", "wms-wmsgate-config")]["data"]
    assert yaml.safe_load(data["routes.yaml"]) == yaml.safe_load((REPO / "config" / "routes.yaml").read_text())
    assert yaml.safe_load(data["gateway.yaml"])["route_map"] == "/etc/wmsgate/routes.yaml"
