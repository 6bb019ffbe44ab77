"""Gateway configuration: a YAML file turned into typed, validated settings.

Configuration is data passed to constructors; nothing reads it from globals.
Relative paths in the file are resolved against the file's own directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from authorizer.authz.tenancy import TenantSettings
from authorizer.tls import TlsSettings, is_loopback_url


class ConfigError(ValueError):
    """The configuration file is missing, malformed or names an impossible setting."""


@dataclass(frozen=True)
class OidcSettings:
    """How bearer tokens are verified (RFC 7519 claims, RFC 7517 JWKS).

    Attributes:
        issuer: expected ``iss``; JWKS is discovered from ``{issuer}/.well-known/openid-configuration``.
        audience: this gateway's client id; it must appear in ``aud``.
        algorithms: signature algorithm allow-list (never ``none`` or HMAC for a public-key issuer).
        leeway_seconds: clock skew tolerated on ``exp``/``nbf``/``iat``, seconds.
        jwks_min_refresh_seconds: minimum seconds between JWKS refetches on an unknown ``kid``.
        username_claim: claim holding the login name (``preferred_username``).
        roles_claim: dotted path to the realm roles list (``realm_access.roles``).
        scope_claim: claim holding the data scope object ``{warehouse, channel, order_type}``.
        grants_claim: claim listing temporary grants as ``role|valid_from|valid_until``.
    """

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    leeway_seconds: int = 30
    jwks_min_refresh_seconds: float = 10.0
    username_claim: str = "preferred_username"
    roles_claim: str = "realm_access.roles"
    scope_claim: str = "wms_scope"
    grants_claim: str = "wms_grants"


@dataclass(frozen=True)
class OpaSettings:
    """Where the PDP lives.

    Attributes:
        url: OPA's base URL.
        decision_path: the data path of the decision, e.g. ``wms/authz/decision``.
        timeout_seconds: limit for one decision, seconds.
        policy_status_url: the bundle service's ``/status`` (shown in health), or None.
    """

    url: str
    decision_path: str = "wms/authz/decision"
    timeout_seconds: float = 2.0
    policy_status_url: str | None = None


@dataclass(frozen=True)
class CredentialSettings:
    """A credential header the legacy WMS expects from its callers.

    Either ``file`` (one static secret) or ``per_warehouse`` (warehouse code ->
    secret file; the request's tenant warehouse chooses) is set. Secrets are read
    once at start; the files hold the raw value. ``format`` is the header value with
    ``{secret}`` for the secret (``Token {secret}``; default the secret alone).
    """

    header: str
    file: Path | None = None
    per_warehouse: dict[str, Path] = field(default_factory=dict)
    format: str = "{secret}"


@dataclass(frozen=True)
class HealthProbe:
    """How ``/_gateway/health`` checks that the WMS answers.

    Attributes:
        path: path (and query) requested on the WMS with GET, e.g. ``/healthz`` or ``/``.
        expect_status: statuses that count as up (a WMS without a health endpoint may
            answer its login page with 200 or 302).
    """

    path: str = "/healthz"
    expect_status: tuple[int, ...] = (200,)


def _health_probe(section: Any) -> HealthProbe:
    if section is None:
        return HealthProbe()
    if not isinstance(section, dict) or not str(section.get("path", "/healthz")).startswith("/"):
        raise ConfigError("config: upstream.health must be {path: /..., expect_status: [200]}")
    unknown = set(section) - {"path", "expect_status"}
    if unknown:
        raise ConfigError(f"config: upstream.health: unknown key(s) {', '.join(sorted(unknown))}")
    expect = section.get("expect_status", [200])
    expect = expect if isinstance(expect, list) else [expect]
    if not expect or not all(isinstance(v, int) and 100 <= v <= 599 for v in expect):
        raise ConfigError("config: upstream.health.expect_status must be HTTP statuses (100-599)")
    return HealthProbe(str(section.get("path", "/healthz")), tuple(expect))


#: Response headers that name the WMS's software or version; never relayed.
BANNER_HEADERS = ("Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version", "X-Runtime",
                  "X-Generator", "X-Drupal-Cache", "X-Debug-Token", "X-Debug-Token-Link", "Via")


@dataclass(frozen=True)
class AnswerSettings:
    """The WMS's answer conventions (``upstream.answers``).

    Attributes:
        drop_headers: response headers never relayed (the banner headers plus any listed).
        status_field: a top-level JSON member through which the WMS reports the real outcome
            inside a 200 (``status_code`` in DRF-style exception handlers); None = none.
        origins: absolute origins (``http://wms.internal:8000``) the WMS writes into links
            besides ``upstream.url``'s; every one is rewritten to the gateway's origin.
    """

    drop_headers: tuple[str, ...] = BANNER_HEADERS
    status_field: str | None = None
    origins: tuple[str, ...] = ()


def _tenant(section: Any) -> TenantSettings | None:
    if not section:
        return None
    if not isinstance(section, dict):
        raise ConfigError("config: upstream.tenant must be {dimension: warehouse, query_param: warehouse}")
    unknown = set(section) - {"dimension", "query_param"}
    if unknown:
        raise ConfigError(f"config: upstream.tenant: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        return TenantSettings(str(section.get("dimension", "warehouse")),
                              section.get("query_param", "warehouse") or None)
    except ValueError as exc:
        raise ConfigError(f"config: {exc}") from exc


def _answers(section: Any) -> AnswerSettings:
    if section is None:
        return AnswerSettings()
    if not isinstance(section, dict):
        raise ConfigError("config: upstream.answers must be a mapping")
    unknown = set(section) - {"drop_headers", "status_field", "origins"}
    if unknown:
        raise ConfigError(f"config: upstream.answers: unknown key(s) {', '.join(sorted(unknown))}")
    origins = tuple(str(o).rstrip("/") for o in section.get("origins") or [])
    for origin in origins:
        if not origin.startswith(("http://", "https://")) or "/" in origin.split("://", 1)[1]:
            raise ConfigError(f"config: upstream.answers.origins: {origin!r} must be scheme://host[:port]")
    field_name = section.get("status_field")
    if field_name is not None and not (isinstance(field_name, str) and field_name):
        raise ConfigError("config: upstream.answers.status_field must be a JSON member name")
    return AnswerSettings(tuple(dict.fromkeys([*BANNER_HEADERS, *(section.get("drop_headers") or [])])),
                          field_name, origins)


@dataclass(frozen=True)
class UpstreamSettings:
    """The protected WMS.

    Attributes:
        url: base URL, e.g. ``http://127.0.0.1:8090``.
        timeout_seconds: total time allowed for one upstream exchange, seconds.
        identity_headers: header -> template sent to the WMS; templates may use
            ``{username}``, ``{user_id}``, ``{roles}`` (comma separated).
        lookup_headers: headers sent on the gateway's own attribute lookups.
        credentials: credential headers the WMS expects.
        lookup_cache_seconds: how long a looked-up resource's attributes are reused.
        max_body_bytes: largest request body read for a decision (413 beyond).
        max_transform_bytes: largest response body read for masking/filtering (502 beyond).
        health: how the health endpoint probes the WMS.
        answers: the WMS's answer conventions (banners, failure in a 200 body, link origins).
        tenant: one WMS credential per warehouse (rows carry no warehouse), or None.
    """

    url: str
    timeout_seconds: float = 30.0
    identity_headers: dict[str, str] = field(default_factory=lambda: {"X-WMS-User": "{username}"})
    lookup_headers: dict[str, str] = field(default_factory=lambda: {"X-WMS-User": "wmsgate-attribute-lookup"})
    credentials: tuple[CredentialSettings, ...] = ()
    lookup_cache_seconds: float = 2.0
    max_body_bytes: int = 1 << 20
    max_transform_bytes: int = 32 << 20
    health: HealthProbe = field(default_factory=HealthProbe)
    answers: AnswerSettings = field(default_factory=AnswerSettings)
    tenant: TenantSettings | None = None


@dataclass(frozen=True)
class AuditSettings:
    """The audit trail store (SQLAlchemy async URL), its writer's batching and checkpoints.

    Attributes:
        signing_key_file: Ed25519 private key (PEM) that signs checkpoints; None = no checkpoints.
        checkpoint_every_records, checkpoint_every_seconds: when checkpoints are signed.
        spool_file: where records wait while the database is down (one file per proxy
            process; None = ``audit-spool.jsonl`` in the state folder).
        spool_max_bytes: the spool's size bound; beyond it the proxy refuses requests.
        retention_days: records older than this are archived and removed (None = keep all).
        archive_dir: where archived segments go (required with ``retention_days``).
        archive_every_seconds: how often the proxy looks for a segment to archive.
    """

    url: str
    flush_interval_seconds: float = 0.2
    batch_size: int = 1000
    max_pending: int = 200_000
    signing_key_file: Path | None = None
    checkpoint_every_records: int = 1000
    checkpoint_every_seconds: float = 60.0
    spool_file: Path | None = None
    spool_max_bytes: int = 256 << 20
    retention_days: float | None = None
    archive_dir: Path | None = None
    archive_every_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.retention_days is not None:
            if self.retention_days <= 0:
                raise ConfigError("config: audit.retention_days must be positive")
            if self.archive_dir is None or self.signing_key_file is None:
                raise ConfigError("config: audit.retention_days needs audit.archive_dir and audit.signing_key_file "
                                  "(records are removed only behind a signed, archived segment)")
        if self.spool_max_bytes <= 0:
            raise ConfigError("config: audit.spool_max_bytes must be positive")


@dataclass(frozen=True)
class KeycloakAdminConfig:
    """The service account the gateway changes access with (client credentials grant).

    Attributes:
        client_id: the confidential client with a service account (``wms-access-admin``).
        client_secret: its secret (from ``client_secret``, ``${ENV}`` or ``client_secret_file``).
        events_interval_seconds: how often Keycloak's admin events are polled for revocations.
    """

    client_id: str
    client_secret: str
    events_interval_seconds: float = 1.0


@dataclass(frozen=True)
class SsoSettings:
    """Browser single sign-on: the gateway as an OIDC relying party (client ``wms-gateway``).

    Attributes:
        client_id, client_secret: the confidential client (secret from ``client_secret``,
            ``${ENV}`` or ``client_secret_file``).
        public_url: the gateway's address as browsers see it (scheme, host, port); the
            callback is ``<public_url>/_gateway/auth/callback``. ``https`` makes cookies Secure.
        session_idle_seconds: a browser session unused this long ends.
        session_max_seconds: a browser session ends this long after login, whatever happens.
        refresh_before_seconds: tokens are refreshed this long before they expire.
    """

    client_id: str
    client_secret: str
    public_url: str
    session_idle_seconds: int = 1800
    session_max_seconds: int = 12 * 3600
    refresh_before_seconds: int = 30

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry ``Secure`` when browsers reach the gateway over TLS."""
        return self.public_url.startswith("https://")


@dataclass(frozen=True)
class AlertingLink:
    """Where the gateway's alert API (``/_gateway/alerts``) finds the alerting service.

    Attributes:
        url: the alerting service's base URL.
        api_token: its API bearer token (``api_token``, ``${ENV}`` or ``api_token_file``).
        timeout_seconds: limit of one call, seconds.
    """

    url: str
    api_token: str
    timeout_seconds: float = 5.0


def _tls(base: Path, section: Any) -> TlsSettings | None:
    if not section:
        return None
    if not section.get("cert_file") or not section.get("key_file"):
        raise ConfigError("config: listen.tls needs cert_file and key_file (PEM)")
    return TlsSettings(resolve_path(base, str(section["cert_file"])), resolve_path(base, str(section["key_file"])))


def _mode(data: dict[str, Any], oidc: dict[str, Any]) -> str:
    """``production`` (default): Keycloak must be reached over HTTPS unless it runs on this
    machine; ``development`` allows plain HTTP (a compose or test stack)."""
    mode = str(data.get("mode", "production"))
    if mode not in ("production", "development"):
        raise ConfigError("config: mode must be production or development")
    issuer = str(oidc.get("issuer", ""))
    if mode == "production" and issuer.startswith("http://") and not is_loopback_url(issuer):
        raise ConfigError(f"config: oidc.issuer {issuer} must be https in production mode "
                          "(tokens and keys would cross the network in clear); set mode: development "
                          "for a test stack")
    return mode


def _enforcement(value: Any) -> str:
    """``enforce`` (default) or ``report``: shadow mode, refusals recorded as would_deny and forwarded."""
    if value not in ("enforce", "report"):
        raise ConfigError("config: enforcement must be enforce or report (shadow mode)")
    return str(value)


def _public_url(value: Any) -> str:
    if value is None:
        return ""
    url = str(value).rstrip("/")
    if not url.startswith(("http://", "https://")) or "/" in url.split("://", 1)[1]:
        raise ConfigError("config: public_url must be scheme://host[:port] (the gateway as clients reach it)")
    return url


def _alerting(base: Path, section: Any) -> AlertingLink | None:
    if not section:
        return None
    token = read_secret(base, section, "api_token")
    if token is None:
        return None  # no token: the alert API answers 503
    return AlertingLink(url=str(section["url"]).rstrip("/"), api_token=token,
                        timeout_seconds=float(section.get("timeout_seconds", 5)))


@dataclass(frozen=True)
class ManagementListener:
    """The management listener (``/metrics``), apart from the public one, on loopback by default.

    Attributes:
        host: address to bind (``127.0.0.1``; a private interface for a scraper elsewhere).
        port: TCP port; a process run with ``--worker-index i`` listens on ``port + i``
            (0: any free port, for tests).
    """

    host: str = "127.0.0.1"
    port: int = 9080


def _management(section: Any) -> ManagementListener | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError("config: management must be a mapping {host, port}")
    unknown = set(section) - {"host", "port"}
    if unknown:
        raise ConfigError(f"config: management: unknown key(s) {', '.join(sorted(unknown))}")
    port = int(section.get("port", ManagementListener.port))
    if not 0 <= port < 65536:
        raise ConfigError("config: management.port must be between 0 (any free port) and 65535")
    return ManagementListener(host=str(section.get("host", ManagementListener.host)), port=port)


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the proxy needs. Build with :func:`load_config`."""

    host: str
    port: int
    oidc: OidcSettings
    opa: OpaSettings
    upstream: UpstreamSettings
    audit: AuditSettings
    route_map: Path
    trusted_proxies: tuple[str, ...] = ()
    strip_request_headers: tuple[str, ...] = ()
    refuse_request_headers: tuple[str, ...] = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")
    approval_sweep_seconds: float = 5.0
    keycloak_admin: KeycloakAdminConfig | None = None
    sso: SsoSettings | None = None
    revocation_refresh_seconds: float = 0.5
    grant_sweep_seconds: float = 20.0
    alerting: AlertingLink | None = None
    tls: TlsSettings | None = None
    trust_ca_file: Path | None = None
    mode: str = "production"
    public_url: str = ""
    enforcement: str = "enforce"
    management: ManagementListener | None = None

    @property
    def public_origin(self) -> str:
        """The gateway's origin as clients reach it (``public_url``, else ``sso.public_url``,
        else the listen address): WMS links in answers are rewritten to it."""
        if self.public_url:
            return self.public_url
        if self.sso is not None:
            return self.sso.public_url
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"


_DEFAULT_STRIP = (
    "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
    "X-Real-IP", "X-Original-URL", "X-Rewrite-URL", "X-WMS-User", "X-WMS-Roles", "X-WMS-User-Id",
)


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping (an empty file is an empty mapping).

    Args:
        path: the file.
        what: what the file is, for error messages (``config``, ``alert rules``...).

    Raises:
        ConfigError: the file cannot be read, is not YAML, or holds something else.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: {path} must hold a mapping")
    return data


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Set dotted keys (``{"audit.url": "..."}``) in a config document, creating sections as needed."""
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"config: section '{name}' is missing or not a mapping")
    return value


def store_url(base: Path, value: str) -> str:
    """A store URL with ``${ENV}`` expanded; a SQLite file given relative
    (``sqlite+aiosqlite:///state/audit.db``) lies in ``base`` (the config file's folder), so a
    deployment folder works wherever it is and from any working directory."""
    url = os.path.expandvars(value)
    prefix, sep, path = url.partition(":///")
    if sep and prefix.startswith("sqlite") and path and not path.startswith("/") and path != ":memory:":
        return f"{prefix}:///{(base / path).resolve()}"
    return url


def resolve_path(base: Path, value: str) -> Path:
    """``value`` with ``${ENV}`` and ``~`` expanded, relative to ``base`` unless absolute."""
    p = Path(os.path.expandvars(value)).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _credentials(base: Path, items: list[dict[str, Any]]) -> tuple[CredentialSettings, ...]:
    out = []
    for item in items:
        if "header" not in item or ("file" in item) == ("per_warehouse" in item):
            raise ConfigError("config: each upstream.credentials entry needs 'header' and one of "
                              "'file', 'per_warehouse'")
        unknown = set(item) - {"header", "file", "per_warehouse", "format"}
        if unknown:
            raise ConfigError(f"config: upstream.credentials: unknown key(s) {', '.join(sorted(unknown))}")
        fmt = str(item.get("format", "{secret}"))
        if "{secret}" not in fmt:
            raise ConfigError("config: upstream.credentials format must contain {secret}")
        out.append(CredentialSettings(
            header=item["header"],
            file=resolve_path(base, item["file"]) if "file" in item else None,
            per_warehouse={k: resolve_path(base, v) for k, v in (item.get("per_warehouse") or {}).items()},
            format=fmt,
        ))
    return tuple(out)


def _keycloak_admin(base: Path, section: Any) -> KeycloakAdminConfig | None:
    if not section:
        return None
    secret = _secret(base, section)
    if secret is None:
        return None  # no secret given: access management is off (its API answers 503)
    return KeycloakAdminConfig(client_id=section.get("client_id", "wms-access-admin"), client_secret=secret,
                               events_interval_seconds=float(section.get("events_interval_seconds", 1.0)))


def read_secret(base: Path, section: dict[str, Any], key: str) -> str | None:
    """The contents of file ``<key>_file`` or the value ``<key>`` (``${ENV}`` expanded) of a
    config section; None when unset or naming an unset environment variable.

    Raises:
        OSError: the secret file cannot be read.
    """
    if section.get(f"{key}_file"):
        secret = resolve_path(base, section[f"{key}_file"]).read_text(encoding="utf-8").strip()
    else:
        secret = os.path.expandvars(str(section.get(key, "") or ""))
    return None if not secret or secret.startswith("$") else secret


def _secret(base: Path, section: dict[str, Any]) -> str | None:
    """``client_secret_file`` contents or ``client_secret``; None when unset."""
    return read_secret(base, section, "client_secret")


def _sso(base: Path, section: Any, host: str, port: int) -> SsoSettings | None:
    if not section:
        return None
    secret = _secret(base, section)
    if secret is None:
        return None  # no secret given: browser SSO is off (browsers get the API's 401)
    public_url = str(section.get("public_url") or f"http://{host}:{port}").rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise ConfigError("config: sso.public_url must be an http(s) URL")
    return SsoSettings(client_id=str(section.get("client_id", "wms-gateway")), client_secret=secret,
                       public_url=public_url,
                       session_idle_seconds=int(section.get("session_idle_minutes", 30)) * 60,
                       session_max_seconds=int(section.get("session_max_hours", 12)) * 3600,
                       refresh_before_seconds=int(section.get("refresh_before_seconds", 30)))


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> GatewayConfig:
    """Read and validate a gateway YAML file.

    Args:
        path: the YAML file.
        overrides: optional top-level values that replace the file's (e.g. ``{"port": 9000}``),
            with dotted keys for nested ones (``{"audit.url": "sqlite+aiosqlite:///x.db"}``).

    Returns:
        The typed configuration.

    Raises:
        ConfigError: the file is unreadable, not YAML, or a required setting is missing.
    """
    data = read_yaml_mapping(path, "config")
    apply_overrides(data, overrides or {})
    base = path.parent.resolve()
    listen = data.get("listen", {})
    oidc = _section(data, "oidc")
    opa = _section(data, "opa")
    up = _section(data, "upstream")
    audit = _section(data, "audit")
    try:
        return GatewayConfig(
            host=str(listen.get("host", "127.0.0.1")),
            port=int(listen.get("port", 8080)),
            oidc=OidcSettings(
                issuer=oidc["issuer"].rstrip("/"),
                audience=oidc["audience"],
                algorithms=tuple(oidc.get("algorithms", OidcSettings.algorithms)),
                leeway_seconds=int(oidc.get("leeway_seconds", 30)),
                jwks_min_refresh_seconds=float(oidc.get("jwks_min_refresh_seconds", 10)),
                username_claim=oidc.get("username_claim", "preferred_username"),
                roles_claim=oidc.get("roles_claim", "realm_access.roles"),
                scope_claim=oidc.get("scope_claim", "wms_scope"),
                grants_claim=oidc.get("grants_claim", "wms_grants"),
            ),
            opa=OpaSettings(url=opa["url"].rstrip("/"), decision_path=opa.get("decision_path", "wms/authz/decision"),
                            timeout_seconds=float(opa.get("timeout_seconds", 2.0)),
                            policy_status_url=opa.get("policy_status_url")),
            upstream=UpstreamSettings(
                url=up["url"].rstrip("/"),
                timeout_seconds=float(up.get("timeout_seconds", 30)),
                identity_headers=dict(up.get("identity_headers", {"X-WMS-User": "{username}"})),
                lookup_headers=dict(up.get("lookup_headers", {"X-WMS-User": "wmsgate-attribute-lookup"})),
                credentials=_credentials(base, up.get("credentials", [])),
                lookup_cache_seconds=float(up.get("lookup_cache_seconds", 2.0)),
                max_body_bytes=int(up.get("max_body_bytes", 1 << 20)),
                max_transform_bytes=int(up.get("max_transform_bytes", 32 << 20)),
                health=_health_probe(up.get("health")),
                answers=_answers(up.get("answers")),
                tenant=_tenant(up.get("tenant")),
            ),
            audit=AuditSettings(
                url=store_url(base, str(audit["url"])),
                flush_interval_seconds=float(audit.get("flush_interval_seconds", 0.2)),
                batch_size=int(audit.get("batch_size", 1000)),
                max_pending=int(audit.get("max_pending", 200_000)),
                signing_key_file=(resolve_path(base, audit["signing_key_file"])
                                  if audit.get("signing_key_file") else None),
                checkpoint_every_records=int(audit.get("checkpoint_every_records", 1000)),
                checkpoint_every_seconds=float(audit.get("checkpoint_every_seconds", 60)),
                spool_file=resolve_path(base, str(audit["spool_file"])) if audit.get("spool_file")
                else None,
                spool_max_bytes=int(audit.get("spool_max_bytes", 256 << 20)),
                retention_days=float(audit["retention_days"]) if audit.get("retention_days") is not None else None,
                archive_dir=resolve_path(base, str(audit["archive_dir"])) if audit.get("archive_dir")
                else None,
                archive_every_seconds=float(audit.get("archive_every_seconds", 3600)),
            ),
            route_map=resolve_path(base, data.get("route_map", "routes.yaml")),
            trusted_proxies=tuple(data.get("trusted_proxies", [])),
            approval_sweep_seconds=float((data.get("approvals") or {}).get("sweep_seconds", 5.0)),
            keycloak_admin=_keycloak_admin(base, data.get("keycloak_admin")),
            sso=_sso(base, data.get("sso"), str(listen.get("host", "127.0.0.1")), int(listen.get("port", 8080))),
            revocation_refresh_seconds=float((data.get("revocation") or {}).get("refresh_seconds", 0.5)),
            grant_sweep_seconds=float((data.get("grants") or {}).get("sweep_seconds", 20.0)),
            alerting=_alerting(base, data.get("alerting")),
            tls=_tls(base, listen.get("tls")),
            trust_ca_file=resolve_path(base, str(data["trust"]["ca_file"]))
            if (data.get("trust") or {}).get("ca_file") else None,
            mode=_mode(data, oidc),
            public_url=_public_url(data.get("public_url")),
            enforcement=_enforcement(data.get("enforcement", "enforce")),
            management=_management(data.get("management")),
            strip_request_headers=tuple(dict.fromkeys(
                [*_DEFAULT_STRIP, *data.get("strip_request_headers", []), *up.get("identity_headers", {}),
                 *(c["header"] for c in up.get("credentials", []))])),
        )
    except KeyError as exc:
        raise ConfigError(f"config: required setting {exc.args[0]!r} is missing") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config: {exc}") from exc
