"""``wmsgate up --config DIR``: the gateway's services for a deployment folder, as local processes.

Keycloak (unless one is given), the policy bundle service (the product's base layer
plus ``DIR/policy``), OPA, the alerting service and the proxy, on the addresses the
folder's ``gateway.yaml`` names; the realm is created from ``DIR/realm.yaml``. The WMS
is the deployment's own and is not started. State (databases, logs, keys OPA verifies)
lives in ``DIR/state``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from authorizer.config import GatewayConfig, load_config, read_yaml_mapping
from wmsgate.devstack import KeycloakRun, keycloak_service, opa_service, policy_bundle_service
from wmsgate.processes import ProcessGroup, Service, StackError, port_in_use
from wmsgate.realm import apply_realm, keycloak_admin
from wmsgate.site_realm import SiteRealm, build_site_realm
from wmsgate.tools import REPO, Tools, locate_tools


@dataclass(frozen=True)
class DeploymentFolder:
    """The files of a deployment folder (see :mod:`wmsgate.scaffold`)."""

    root: Path

    @property
    def gateway_config(self) -> Path:
        """The proxy's config."""
        return self.root / "gateway.yaml"

    @property
    def alerting_config(self) -> Path:
        """The alerting service's config."""
        return self.root / "alerting.yaml"

    @property
    def realm_file(self) -> Path:
        """The realm settings."""
        return self.root / "realm.yaml"

    @property
    def policy(self) -> Path:
        """The deployment's policy layer."""
        return self.root / "policy"

    @property
    def state(self) -> Path:
        """Databases, logs, derived files."""
        return self.root / "state"


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


class DeploymentStack(ProcessGroup):
    """Starts and stops a deployment folder's services.

    Args:
        folder: the deployment folder.
        keycloak_url: a running Keycloak to use (its realm is created there), or None to start one
            on the issuer's port (management port = that + 1000).
        kc_admin: the master realm's admin (the bootstrap admin of a started Keycloak).
        tools: pinned tool locations.

    Raises:
        authorizer.config.ConfigError: the folder's gateway config is invalid.
    """

    def __init__(self, folder: DeploymentFolder, keycloak_url: str | None = None,
                 kc_admin: tuple[str, str] = ("kcadmin", "kcadmin-demo"), tools: Tools | None = None) -> None:
        super().__init__()
        self.folder = folder
        self.tools = tools or locate_tools()
        self.config: GatewayConfig = load_config(folder.gateway_config)
        self.keycloak_url = (keycloak_url.rstrip("/") if keycloak_url
                             else self.config.oidc.issuer.rpartition("/realms/")[0])
        self.external_keycloak = keycloak_url is not None
        self.kc_admin = kc_admin
        self.logs = folder.state / "logs"
        self.proxy_url = f"{'https' if self.config.tls else 'http'}://{self.config.host}:{self.config.port}"
        self.realm_created = False

    def start(self, replace_realm: bool = False) -> None:
        """Start every service and wait until each answers (the proxy last, after the realm exists).

        Raises:
            StackError: a port is taken, or a service exited or did not become ready.
        """
        cfg = self.config
        self.folder.state.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        alerting = read_yaml_mapping(self.folder.alerting_config, "alerting config") \
            if self.folder.alerting_config.exists() else None
        policy_url = cfg.opa.policy_status_url or ""
        planned: list[tuple[str, str]] = [("proxy", self.proxy_url), ("opa", cfg.opa.url), ("policy", policy_url)]
        if not self.external_keycloak:
            planned.append(("keycloak", self.keycloak_url))
        if alerting is not None:
            planned.append(("alerting", f"http://127.0.0.1:{(alerting.get('listen') or {}).get('port', 8070)}"))
        busy = [f"{name} {url}" for name, url in planned if url and port_in_use(*_host_port(url))]
        if busy:
            raise StackError(f"address(es) already in use: {', '.join(busy)}")
        try:
            first = []
            if not self.external_keycloak:
                first.append(self._keycloak(alerting))
            if policy_url:
                first.append(policy_bundle_service(self.tools, (REPO / "rego" / "base", self.folder.policy),
                                                   *_host_port(policy_url), self.folder.state, self.logs))
            first.append(opa_service(self.tools, *_host_port(cfg.opa.url), policy_url.removesuffix("/status"),
                                     self.folder.state, self.logs))
            for service in first:
                self._spawn(service)
            for service in first:
                self._wait_ready(service)
            self.realm_created = self.apply_realm(replace_realm)
            if alerting is not None:
                service = Service("alerting", [sys.executable, "-m", "alerting", "--config",
                                               str(self.folder.alerting_config)],
                                  f"http://127.0.0.1:{(alerting.get('listen') or {}).get('port', 8070)}/health",
                                  self.logs / "alerting.log", {}, REPO, timeout=90)
                self._spawn(service)
                self._wait_ready(service)
            proxy = Service("proxy", [sys.executable, "-m", "wmsgate.cli", "proxy", "--config",
                                      str(self.folder.gateway_config)],
                            f"{self.proxy_url}/_gateway/health", self.logs / "proxy.log", {}, REPO, timeout=60,
                            ready_on_any_answer=True)  # the WMS may be down: the proxy still answers
            self._spawn(proxy)
            self._wait_ready(proxy)
        except BaseException:
            self.stop()
            raise

    def _keycloak(self, alerting: dict[str, object] | None) -> Service:
        host, port = _host_port(self.keycloak_url)
        events_url, events_secret = "http://127.0.0.1:9/events", "unused"
        if alerting is not None:
            listen = alerting.get("listen") or {}
            events_url = f"http://127.0.0.1:{listen.get('port', 8070)}/events"  # type: ignore[union-attr]
            secret_file = self.folder.root / "secrets" / "events.secret"
            if secret_file.exists():
                events_secret = secret_file.read_text(encoding="utf-8").strip()
        return keycloak_service(self.tools, KeycloakRun(host, port, port + 1000, self.folder.state / "keycloak",
                                                        self.kc_admin, events_url, events_secret), self.logs)

    def apply_realm(self, replace: bool) -> bool:
        """Create the realm of ``realm.yaml`` (re-create it with ``replace``). Returns whether it was created."""
        site = SiteRealm.load(self.folder.realm_file)
        if not self.config.oidc.issuer.endswith(f"/realms/{site.realm}"):
            raise StackError(f"{self.folder.realm_file}: realm {site.realm!r} is not the one gateway.yaml's "
                             f"oidc.issuer names ({self.config.oidc.issuer})")
        rep = build_site_realm(site, self.config.public_origin)
        return apply_realm(keycloak_admin(self.keycloak_url, *self.kc_admin), rep, replace=replace)
