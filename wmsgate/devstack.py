"""The native local stack: Keycloak, OPA, the demo WMS and the proxy as processes on 127.0.0.1.

Used by ``wmsgate demo`` (foreground until Ctrl-C) and by the integration tests
(on other ports, with their own state folder). Every process runs in its own
process group so stopping the stack stops every child (Keycloak's JVM included).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from authorizer.audit.chain import generate_key
from authorizer.config import apply_overrides
from wmsgate.realm import apply_realm, build_realm, demo_overlay, keycloak_admin
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

    @classmethod
    def offset(cls, delta: int) -> "Ports":
        """Default ports shifted by ``delta`` (tests use +10000 so a running demo is untouched)."""
        d = cls()
        return cls(d.proxy + delta, d.keycloak + delta, d.keycloak_management + delta, d.opa + delta, d.wms + delta,
                   d.policy + delta, d.alerting + delta)


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
        policy_dir: the policy folder the bundle service serves (edits there are live).
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
    policy_dir: Path = REPO / "rego"
    audit_url: str | None = None
    alerting_overrides: dict[str, object] = field(default_factory=dict)
    alerts_url: str | None = None


#: The key id OPA knows the policy bundles' signing key by.
POLICY_KEY_ID = "wms-policy"


def generate_rsa_key(private: Path, public: Path) -> None:
    """Write a new RSA-2048 key pair as PEM files (the private one readable by its owner only)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private.parent.mkdir(parents=True, exist_ok=True)
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))


class StackError(RuntimeError):
    """A service did not start; the message includes the end of its log."""


@dataclass
class _Service:
    name: str
    argv: list[str]
    ready_url: str
    log: Path
    env: dict[str, str]
    cwd: Path
    timeout: float
    process: subprocess.Popen[bytes] | None = None
    ready_on_any_answer: bool = False
    ca_file: Path | None = None  # an https ready_url is checked trusting this CA


def _get(url: str, timeout: float = 2.0, ca_file: Path | None = None) -> int:
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:  # noqa: S310 - loopback URLs
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class LocalStack:
    """Starts and stops the whole gateway stack.

    Args:
        settings: ports, state folder, fresh/keep.
        tools: pinned tool locations (default: :func:`wmsgate.tools.locate_tools`).
    """

    def __init__(self, settings: StackSettings, tools: Tools | None = None) -> None:
        self.settings = settings
        self.tools = tools or locate_tools()
        self.services: list[_Service] = []
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
        busy = [f"{name} {port}" for name, port in vars(s.ports).items() if _port_in_use(s.host, port)]
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

    def stop(self) -> None:
        """Stop every started process (SIGTERM to its group, SIGKILL after 15 s), newest first."""
        for service in reversed(self.services):
            proc = service.process
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 15
        for service in reversed(self.services):
            proc = service.process
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.services.clear()

    def failed(self) -> list[str]:
        """Names of services whose process has exited."""
        return [s.name for s in self.services if s.process is not None and s.process.poll() is not None]

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
        for service in [s for s in self.services if s.name == "proxy"]:
            if service.process is not None and service.process.poll() is None:
                os.killpg(service.process.pid, signal.SIGTERM)
                service.process.wait(timeout=15)
            self.services.remove(service)
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
            extra_args: more ``wmsgate proxy`` arguments (``--worker-index 1``, ``--workers 2``).
            config: another gateway config (:meth:`write_gateway_config`); default the stack's.
            scheme: ``https`` when that config makes the proxy listen with TLS.
            verify: for ``https``, the CA file the readiness check trusts.
            require_healthy: wait for a 200 health answer; False = any answer (a dependency is meant to fail).
        """
        argv = [sys.executable, "-m", "wmsgate.cli", "proxy", "--config", str(config or self.gateway_config),
                "--port", str(port), *extra_args]
        url = f"{scheme}://{self.settings.host}:{port}"
        service = _Service(name, argv, f"{url}/_gateway/health", self.logs / f"{name}.log",
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

    def stop_service(self, name: str) -> None:
        """Stop one named service (SIGTERM to its process group; SIGKILL after 20 s)."""
        for service in [s for s in self.services if s.name == name]:
            if service.process is not None and service.process.poll() is None:
                os.killpg(service.process.pid, signal.SIGTERM)
                try:
                    service.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(service.process.pid, signal.SIGKILL)
                    service.process.wait()
            self.services.remove(service)

    def stop_alerting(self) -> None:
        """Stop the alerting service (SIGTERM, as an operator would)."""
        for service in [s for s in self.services if s.name == "alerting"]:
            if service.process is not None and service.process.poll() is None:
                os.killpg(service.process.pid, signal.SIGTERM)
                service.process.wait(timeout=15)
            self.services.remove(service)

    def start_alerting(self, extra_overrides: dict[str, object] | None = None) -> None:
        """(Re)start the alerting service and wait until it answers (its Keycloak catch-up done).

        Args:
            extra_overrides: alerting config values (dotted keys) for this run only.
        """
        self.stop_alerting()
        self._write_alerting_config(extra_overrides)
        service = _Service("alerting", [sys.executable, "-m", "alerting", "--config", str(self.alerting_config)],
                           f"{self.alerting_url}/health", self.logs / "alerting.log",
                           {"WMSGATE_STATE": str(self.settings.state)}, REPO, timeout=90)
        self._spawn(service)
        self._wait_ready(service)

    # -- services ----------------------------------------------------------------------
    def _keycloak(self) -> _Service:
        s, t = self.settings, self.tools
        db = s.state / "keycloak" / "keycloakdb"
        db.parent.mkdir(parents=True, exist_ok=True)
        env = {
            "JAVA_HOME": str(t.java_home),
            # newer JDKs (25) need this for JBoss threads' access to Thread internals
            "JAVA_OPTS_APPEND": "--add-opens=java.base/java.lang=ALL-UNNAMED",
            "KC_BOOTSTRAP_ADMIN_USERNAME": s.kc_admin[0],
            "KC_BOOTSTRAP_ADMIN_PASSWORD": s.kc_admin[1],
        }
        argv = [str(t.keycloak_home / "bin" / "kc.sh"), "start-dev",
                f"--http-host={s.host}", f"--http-port={s.ports.keycloak}",
                f"--http-management-port={s.ports.keycloak_management}", "--health-enabled=true",
                "--db=dev-file", f"--db-url=jdbc:h2:file:{db};NON_KEYWORDS=VALUE",
                "--log-level=WARN,org.keycloak.events:DEBUG",
                # the gateway's event listener pushes user and admin events to the alerting service
                f"--spi-events-listener--wms-gateway-events--url={self.alerting_url}/events",
                f"--spi-events-listener--wms-gateway-events--secret={demo_overlay()['events_secret']}",
                "--spi-events-listener--wms-gateway-events--max-backoff-ms=2000"]
        return _Service("keycloak", argv, f"http://{s.host}:{s.ports.keycloak_management}/health/ready",
                        self.logs / "keycloak.log", env, REPO, timeout=240)

    def _policy_service(self) -> _Service:
        s = self.settings
        argv = [sys.executable, "-m", "policy_service", "--source", str(s.policy_dir), "--opa", str(self.tools.opa),
                "--workdir", str(s.state / "policy-bundles"), "--host", s.host, "--port", str(s.ports.policy),
                "--signing-key", str(self.policy_signing_key()[0])]
        return _Service("policy-service", argv, f"{self.policy_url}/status", self.logs / "policy-service.log", {},
                        REPO, timeout=120)

    def policy_signing_key(self) -> tuple[Path, Path]:
        """The policy bundles' RSA signing key and its public key (PEM files in the state folder,
        made on first use)."""
        private = self.settings.state / "policy-signing-key.pem"
        public = self.settings.state / "policy-signing-key.pub.pem"
        if not private.exists() or not public.exists():
            generate_rsa_key(private, public)
        return private, public

    def _opa(self) -> _Service:
        s = self.settings
        config = s.state / "opa-config.yaml"
        public_key = self.policy_signing_key()[1].read_text(encoding="utf-8")
        config.write_text(yaml.safe_dump({
            "services": {"policy": {"url": self.policy_url}},
            # OPA refuses a bundle whose signature does not verify and keeps the last good one
            "keys": {POLICY_KEY_ID: {"algorithm": "RS256", "key": public_key}},
            "bundles": {"wms": {"service": "policy", "resource": "/bundles/wms.tar.gz",
                                "signing": {"keyid": POLICY_KEY_ID},
                                "polling": {"min_delay_seconds": 1, "max_delay_seconds": 2}}},
        }), encoding="utf-8")
        argv = [str(self.tools.opa), "run", "--server", f"--addr={s.host}:{s.ports.opa}", "--log-level=error",
                "--skip-version-check", f"--config-file={config}"]
        return _Service("opa", argv, f"{self.opa_url}/health?bundles", self.logs / "opa.log", {}, REPO, timeout=120)

    def _wms(self) -> _Service:
        s = self.settings
        argv = [sys.executable, "-m", "demo_wms", "--db", str(self.wms_db), "--host", s.host,
                "--port", str(s.ports.wms), "--access-log", str(self.wms_access_log)]
        return _Service("demo-wms", argv, f"{self.wms_url}/healthz", self.logs / "demo-wms.log", {}, REPO, timeout=60)

    def _proxy(self) -> _Service:
        argv = [sys.executable, "-m", "wmsgate.cli", "proxy", "--config", str(self.gateway_config)]
        return _Service("proxy", argv, f"{self.proxy_url}/_gateway/health", self.logs / "proxy.log",
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
        data["oidc"]["issuer"] = self.issuer
        data["opa"]["url"] = self.opa_url
        data["opa"]["policy_status_url"] = f"{self.policy_url}/status"
        data["upstream"]["url"] = self.wms_url
        data["audit"]["url"] = self.audit_url
        key = s.state / "audit-signing-key.pem"
        if not key.exists():
            generate_key(key)
        data["audit"]["signing_key_file"] = str(key)
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

    def _spawn(self, service: _Service) -> None:
        log = service.log.open("ab")
        env = {**os.environ, **service.env}
        service.process = subprocess.Popen(service.argv, cwd=service.cwd, env=env, stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.services.append(service)

    def _wait_ready(self, service: _Service) -> None:
        deadline = time.monotonic() + service.timeout
        while time.monotonic() < deadline:
            assert service.process is not None
            if service.process.poll() is not None:
                raise StackError(f"{service.name} exited with {service.process.returncode}\n{self._tail(service)}")
            status = _get(service.ready_url, ca_file=service.ca_file)
            if status == 200 or (service.ready_on_any_answer and status != 0):
                return
            time.sleep(0.3)
        raise StackError(f"{service.name} not ready after {service.timeout:.0f}s at {service.ready_url}\n"
                         f"{self._tail(service)}")

    @staticmethod
    def _tail(service: _Service, lines: int = 40) -> str:
        try:
            text = service.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return f"--- last lines of {service.log} ---\n" + "\n".join(text[-lines:])
