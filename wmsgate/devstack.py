"""The native local stack: Keycloak, OPA, the demo WMS and the proxy as processes on 127.0.0.1.

Used by ``wmsgate demo`` (foreground until Ctrl-C) and by the integration tests
(on other ports, with their own state folder). Every process runs in its own
process group so stopping the stack stops every child (Keycloak's JVM included).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from authorizer.audit.chain import generate_key
from authorizer.config import apply_overrides
from policy_service.builder import SIGNING_KEY_ID
from wmsgate.processes import ProcessGroup, Service, StackError, port_in_use
from wmsgate.realm import apply_realm, build_realm, demo_overlay, keycloak_admin
from wmsgate.scaffold import new_secret
from wmsgate.tools import REPO, Tools, locate_tools


@dataclass(frozen=True)
class Ports:
    """Loopback ports of the stack (defaults of architecture.md)."""

    proxy: int = 8080
    keycloak: int = 8180
    keycloak_management: int = 9180
    opa: int = 8181
    wms: int = 8090
    policy: int = 8182
    alerting: int = 8070
    gateway_management: int = 9080

    @classmethod
    def offset(cls, delta: int) -> Ports:
        """Default ports shifted by ``delta`` (tests use +10000 so a running demo is untouched)."""
        d = cls()
        return cls(d.proxy + delta, d.keycloak + delta, d.keycloak_management + delta, d.opa + delta, d.wms + delta,
                   d.policy + delta, d.alerting + delta, d.gateway_management + delta)


@dataclass(frozen=True)
class StackSettings:
    """How to run the stack.

    Attributes:
        state: folder for databases, logs and derived config (git-ignored).
        ports: where each service listens.
        fresh: re-create the demo realm and WMS data (False = KEEP=1).
        host: bind address (loopback only).
        kc_admin: Keycloak bootstrap admin (username, password) for the master realm.
        proxy_overrides: extra gateway config values (dotted keys), e.g. credentials for tests.
        policy_dir: the deployment's policy layer the bundle service serves on top of
            ``policy_base`` (edits to either are live).
        policy_base: the gateway's own policy layer (rules and its own data).
        audit_url: the proxy's audit store (SQLAlchemy async URL); None = SQLite in ``state``.
        alerting_overrides: extra alerting service config values (dotted keys), e.g. notifiers.
        alerts_url: the alert store (SQLAlchemy async URL); None = SQLite in ``state``.
    """

    state: Path
    ports: Ports = field(default_factory=Ports)
    fresh: bool = True
    host: str = "127.0.0.1"
    kc_admin: tuple[str, str] = ("kcadmin", "kcadmin-demo")
    proxy_overrides: dict[str, object] = field(default_factory=dict)
    policy_dir: Path = REPO / "rego" / "demo"
    policy_base: Path = REPO / "rego" / "base"
    audit_url: str | None = None
    alerting_overrides: dict[str, object] = field(default_factory=dict)
    alerts_url: str | None = None


#: The key id OPA knows the policy bundles' signing key by (the bundle service's).
POLICY_KEY_ID = SIGNING_KEY_ID


def generate_rsa_key(private: Path, public: Path) -> None:
    """Write a new RSA-2048 key pair as PEM files (the private one readable by its owner only)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private.parent.mkdir(parents=True, exist_ok=True)
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))


def policy_signing_key(state: Path) -> tuple[Path, Path]:
    """The policy bundles' RSA signing key and its public key in ``state`` (made on first use)."""
    private = state / "policy-signing-key.pem"
    public = state / "policy-signing-key.pub.pem"
    if not private.exists() or not public.exists():
        generate_rsa_key(private, public)
    return private, public


@dataclass(frozen=True)
class KeycloakRun:
    """How to run Keycloak (``kc.sh start-dev`` with an H2 file database in ``data``).

    Attributes:
        events_url, events_secret: where the gateway's event listener pushes (the alerting
            service's ``/events``) and the HMAC key it signs with.
    """

    host: str
    port: int
    management_port: int
    data: Path
    admin: tuple[str, str]
    events_url: str
    events_secret: str


def keycloak_service(tools: Tools, run: KeycloakRun, logs: Path) -> Service:
    """The Keycloak service (the pinned distribution with the gateway's event listener)."""
    db = run.data / "keycloakdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    env = {
        "JAVA_HOME": str(tools.java_home),
        # newer JDKs (25) need this for JBoss threads' access to Thread internals
        "JAVA_OPTS_APPEND": "--add-opens=java.base/java.lang=ALL-UNNAMED",
        "KC_BOOTSTRAP_ADMIN_USERNAME": run.admin[0],
        "KC_BOOTSTRAP_ADMIN_PASSWORD": run.admin[1],
    }
    argv = [str(tools.keycloak_home / "bin" / "kc.sh"), "start-dev",
            f"--http-host={run.host}", f"--http-port={run.port}",
            f"--http-management-port={run.management_port}", "--health-enabled=true",
            "--db=dev-file", f"--db-url=jdbc:h2:file:{db};NON_KEYWORDS=VALUE",
            "--log-level=WARN,org.keycloak.events:DEBUG",
            # the gateway's event listener pushes user and admin events to the alerting service
            f"--spi-events-listener--wms-gateway-events--url={run.events_url}",
            f"--spi-events-listener--wms-gateway-events--secret={run.events_secret}",
            "--spi-events-listener--wms-gateway-events--max-backoff-ms=2000"]
    return Service("keycloak", argv, f"http://{run.host}:{run.management_port}/health/ready",
                   logs / "keycloak.log", env, REPO, timeout=240)


def policy_bundle_service(tools: Tools, layers: tuple[Path, ...], host: str, port: int, state: Path,
                          logs: Path) -> Service:
    """The policy bundle service building ``layers`` (base first) into signed bundles."""
    sources = [arg for layer in layers for arg in ("--source", str(layer))]
    argv = [sys.executable, "-m", "policy_service", *sources, "--opa", str(tools.opa),
            "--workdir", str(state / "policy-bundles"), "--host", host, "--port", str(port),
            "--signing-key", str(policy_signing_key(state)[0])]
    return Service("policy-service", argv, f"http://{host}:{port}/status", logs / "policy-service.log", {},
                   REPO, timeout=120)


def opa_service(tools: Tools, host: str, port: int, policy_url: str, state: Path, logs: Path) -> Service:
    """OPA polling the bundle service and verifying each bundle's signature (key in ``state``)."""
    config = state / "opa-config.yaml"
    public_key = policy_signing_key(state)[1].read_text(encoding="utf-8")
    config.write_text(yaml.safe_dump({
        "services": {"policy": {"url": policy_url}},
        # OPA refuses a bundle whose signature does not verify and keeps the last good one
        "keys": {POLICY_KEY_ID: {"algorithm": "RS256", "key": public_key}},
        "bundles": {"wms": {"service": "policy", "resource": "/bundles/wms.tar.gz",
                            "signing": {"keyid": POLICY_KEY_ID},
                            "polling": {"min_delay_seconds": 1, "max_delay_seconds": 2}}},
    }), encoding="utf-8")
    argv = [str(tools.opa), "run", "--server", f"--addr={host}:{port}", "--log-level=error",
            "--skip-version-check", f"--config-file={config}"]
    return Service("opa", argv, f"http://{host}:{port}/health?bundles", logs / "opa.log", {}, REPO, timeout=120)


class LocalStack(ProcessGroup):
    """Starts and stops the whole gateway stack.

    Args:
        settings: ports, state folder, fresh/keep.
        tools: pinned tool locations (default: :func:`wmsgate.tools.locate_tools`).
    """

    def __init__(self, settings: StackSettings, tools: Tools | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.tools = tools or locate_tools()
        s = settings
        self.issuer = f"http://{s.host}:{s.ports.keycloak}/realms/wms"
        self.keycloak_url = f"http://{s.host}:{s.ports.keycloak}"
        self.proxy_url = f"http://{s.host}:{s.ports.proxy}"
        self.wms_url = f"http://{s.host}:{s.ports.wms}"
        self.opa_url = f"http://{s.host}:{s.ports.opa}"
        self.policy_url = f"http://{s.host}:{s.ports.policy}"
        self.alerting_url = f"http://{s.host}:{s.ports.alerting}"
        self.wms_db = s.state / "wms.db"
        self.wms_access_log = s.state / "wms-access.log"
        self.audit_db = s.state / "audit.db"
        self.audit_url = s.audit_url or f"sqlite+aiosqlite:///{self.audit_db}"
        self.gateway_config = s.state / "gateway.yaml"
        self.alerts_db = s.state / "alerts.db"
        self.alerts_url = s.alerts_url or f"sqlite+aiosqlite:///{self.alerts_db}"
        self.alerting_config = s.state / "alerting.yaml"
        self.logs = s.state / "logs"

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Start every service and wait until each is ready (the proxy last, after the realm exists).

        Raises:
            StackError: a service exited or did not become ready in time (its log tail is included).
        """
        s = self.settings
        busy = [f"{name} {port}" for name, port in vars(s.ports).items() if port_in_use(s.host, port)]
        if busy:
            raise StackError(f"port(s) already in use on {s.host}: {', '.join(busy)}; "
                             "is another demo or test run still going?")
        s.state.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        if s.fresh:
            shutil.rmtree(s.state / "keycloak", ignore_errors=True)
            for p in (self.wms_db, self.wms_access_log, self.alerts_db, self.alerts_db.with_suffix(".db-wal"),
                      self.alerts_db.with_suffix(".db-shm")):
                p.unlink(missing_ok=True)
        try:
            for service in (self._keycloak(), self._policy_service(), self._opa(), self._wms()):
                self._spawn(service)
            for service in list(self.services):
                self._wait_ready(service)
            self._apply_realm()
            self.start_alerting()
            self._write_gateway_config()
            proxy = self._proxy()
            self._spawn(proxy)
            self._wait_ready(proxy)
        except BaseException:
            self.stop()
            raise

    def kill_proxy(self) -> None:
        """SIGKILL the proxy (no shutdown handlers run), as a crash would."""
        for service in self.services:
            if service.name == "proxy" and service.process is not None and service.process.poll() is None:
                os.killpg(service.process.pid, signal.SIGKILL)
                service.process.wait(timeout=15)

    def restart_proxy(self, extra_overrides: dict[str, object] | None = None, require_healthy: bool = True) -> None:
        """Stop and start only the proxy (e.g. with other settings).

        Args:
            extra_overrides: gateway config values (dotted keys) for this run only.
            require_healthy: wait for a 200 health answer; when False, any answer will do
                (for tests that point the proxy at a dead dependency).
        """
        self.stop_service("proxy")
        self._write_gateway_config(extra_overrides)
        proxy = self._proxy()
        proxy.ready_on_any_answer = not require_healthy
        self._spawn(proxy)
        self._wait_ready(proxy)

    def start_extra_proxy(self, name: str, port: int, extra_args: list[str], config: Path | None = None,
                          scheme: str = "http", verify: Path | None = None, require_healthy: bool = True) -> str:
        """Another proxy process on ``port`` with the stack's gateway config and store (scale-out
        tests); stopped with the stack or by :meth:`stop_service`. Returns its base URL.

        Args:
            name: the service's name (and log file).
            extra_args: more ``wmsgate proxy`` arguments (``--worker-index 1``, ``--workers 2``); its
                management listener takes any free port (nothing scrapes it).
            config: another gateway config (:meth:`write_gateway_config`); default the stack's.
            scheme: ``https`` when that config makes the proxy listen with TLS.
            verify: for ``https``, the CA file the readiness check trusts.
            require_healthy: wait for a 200 health answer; False = any answer (a dependency is meant to fail).
        """
        argv = [sys.executable, "-m", "wmsgate.cli", "proxy", "--config", str(config or self.gateway_config),
                "--port", str(port), "--management-port", "0", *extra_args]
        url = f"{scheme}://{self.settings.host}:{port}"
        service = Service(name, argv, f"{url}/_gateway/health", self.logs / f"{name}.log",
                           {"WMSGATE_STATE": str(self.settings.state)}, REPO, timeout=60, ca_file=verify,
                           ready_on_any_answer=not require_healthy)
        self._spawn(service)
        self._wait_ready(service)
        return url

    def start_policy_service(self) -> None:
        """(Re)start the policy bundle service and wait until it serves."""
        self.stop_service("policy-service")
        service = self._policy_service()
        self._spawn(service)
        self._wait_ready(service)

    def stop_alerting(self) -> None:
        """Stop the alerting service (SIGTERM, as an operator would)."""
        self.stop_service("alerting")

    def start_alerting(self, extra_overrides: dict[str, object] | None = None) -> None:
        """(Re)start the alerting service and wait until it answers (its Keycloak catch-up done).

        Args:
            extra_overrides: alerting config values (dotted keys) for this run only.
        """
        self.stop_alerting()
        self._write_alerting_config(extra_overrides)
        service = Service("alerting", [sys.executable, "-m", "alerting", "--config", str(self.alerting_config)],
                           f"{self.alerting_url}/health", self.logs / "alerting.log",
                           {"WMSGATE_STATE": str(self.settings.state)}, REPO, timeout=90)
        self._spawn(service)
        self._wait_ready(service)

    # -- services ----------------------------------------------------------------------
    def _keycloak(self) -> Service:
        s = self.settings
        return keycloak_service(self.tools, KeycloakRun(
            s.host, s.ports.keycloak, s.ports.keycloak_management, s.state / "keycloak", s.kc_admin,
            f"{self.alerting_url}/events", demo_overlay()["events_secret"]), self.logs)

    def _policy_service(self) -> Service:
        s = self.settings
        return policy_bundle_service(self.tools, (s.policy_base, s.policy_dir), s.host, s.ports.policy, s.state,
                                     self.logs)

    def policy_signing_key(self) -> tuple[Path, Path]:
        """The policy bundles' RSA signing key and its public key (PEM files in the state folder,
        made on first use)."""
        return policy_signing_key(self.settings.state)

    def _opa(self) -> Service:
        s = self.settings
        return opa_service(self.tools, s.host, s.ports.opa, self.policy_url, s.state, self.logs)

    def _wms(self) -> Service:
        s = self.settings
        argv = [sys.executable, "-m", "demo_wms", "--db", str(self.wms_db), "--host", s.host,
                "--port", str(s.ports.wms), "--access-log", str(self.wms_access_log)]
        return Service("demo-wms", argv, f"{self.wms_url}/healthz", self.logs / "demo-wms.log", {}, REPO, timeout=60)

    def _proxy(self) -> Service:
        argv = [sys.executable, "-m", "wmsgate.cli", "proxy", "--config", str(self.gateway_config)]
        return Service("proxy", argv, f"{self.proxy_url}/_gateway/health", self.logs / "proxy.log",
                        {"WMSGATE_STATE": str(self.settings.state)}, REPO, timeout=60)

    def write_gateway_config(self, path: Path, extra: dict[str, object] | None = None) -> Path:
        """The stack's gateway config with ``extra`` values (dotted keys), written to ``path``
        (for an extra proxy with other settings, e.g. TLS). Returns ``path``."""
        self._write_gateway_config(extra, path)
        return path

    def _write_gateway_config(self, extra: dict[str, object] | None = None, path: Path | None = None) -> None:
        s = self.settings
        data = yaml.safe_load((REPO / "config" / "gateway.yaml").read_text(encoding="utf-8"))
        data["listen"] = {"host": s.host, "port": s.ports.proxy}
        data["management"] = {"host": s.host, "port": s.ports.gateway_management}
        data["oidc"]["issuer"] = self.issuer
        data["opa"]["url"] = self.opa_url
        data["opa"]["policy_status_url"] = f"{self.policy_url}/status"
        data["opa"]["wasm_bundle_url"] = f"{self.policy_url}/bundles/wms.wasm.tar.gz"
        data["opa"]["bundle_public_key_file"] = str(policy_signing_key(s.state)[1])
        data["upstream"]["url"] = self.wms_url
        data["audit"]["url"] = self.audit_url
        key = s.state / "audit-signing-key.pem"
        if not key.exists():
            generate_key(key)
        data["audit"]["signing_key_file"] = str(key)
        data["audit"]["spool_file"] = str(s.state / "audit-spool.jsonl")
        mask_key = s.state / "mask-hash.key"
        if not mask_key.exists():
            new_secret(mask_key)
        data["masking"] = {"hash_key_file": str(mask_key)}
        # a real deployment puts the witness out of the database's reach (another disk or host)
        (s.state / "audit-witness").mkdir(parents=True, exist_ok=True)  # never created by the proxy
        data["audit"]["witness_dir"] = str(s.state / "audit-witness")
        data["route_map"] = str(REPO / "config" / "routes.yaml")
        data["keycloak_admin"]["client_secret"] = demo_overlay()["access_admin_client_secret"]
        data["sso"]["client_secret"] = demo_overlay()["gateway_client_secret"]
        data["sso"]["public_url"] = self.proxy_url
        data["alerting"] = {"url": self.alerting_url, "api_token": demo_overlay()["alerting_api_token"]}
        apply_overrides(data, {**s.proxy_overrides, **(extra or {})})
        (path or self.gateway_config).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                                                 encoding="utf-8")

    def _write_alerting_config(self, extra: dict[str, object] | None = None) -> None:
        s, overlay = self.settings, demo_overlay()
        data = yaml.safe_load((REPO / "config" / "alerting.yaml").read_text(encoding="utf-8"))
        data["listen"] = {"host": s.host, "port": s.ports.alerting}
        data["store"]["url"] = self.alerts_url
        data["intake"]["secret"] = overlay["events_secret"]
        data["api"]["token"] = overlay["alerting_api_token"]
        data["keycloak"].update(url=self.keycloak_url, client_secret=overlay["alerting_client_secret"])
        data["gateway_audit"]["url"] = self.audit_url
        data["rules"] = str(REPO / "config" / "alert-rules.yaml")
        data["console_url"] = self.proxy_url
        apply_overrides(data, {**s.alerting_overrides, **(extra or {})})
        self.alerting_config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

    def _apply_realm(self) -> None:
        admin = keycloak_admin(self.keycloak_url, *self.settings.kc_admin)
        apply_realm(admin, build_realm(demo=True, gateway_url=self.proxy_url), replace=self.settings.fresh)
