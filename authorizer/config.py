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

from authorizer import config_schema as schema
from authorizer.authz.tenancy import TenantSettings
from authorizer.config_schema import ConfigError as ConfigError
from authorizer.config_schema import default
from authorizer.tls import TlsSettings


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
        reports_to_claim: claim listing the usernames the person reports to (their reporting
            line, for approver predicates).
    """

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = tuple(default(schema.OidcFile, "algorithms"))
    leeway_seconds: int = default(schema.OidcFile, "leeway_seconds")
    jwks_min_refresh_seconds: float = default(schema.OidcFile, "jwks_min_refresh_seconds")
    username_claim: str = default(schema.OidcFile, "username_claim")
    roles_claim: str = default(schema.OidcFile, "roles_claim")
    scope_claim: str = default(schema.OidcFile, "scope_claim")
    grants_claim: str = default(schema.OidcFile, "grants_claim")
    reports_to_claim: str = default(schema.OidcFile, "reports_to_claim")


@dataclass(frozen=True)
class OpaSettings:
    """Where the PDP lives.

    Attributes:
        url: OPA's base URL.
        decision_path: the data path of the decision, e.g. ``wms/authz/decision``.
        timeout_seconds: limit for one decision, seconds.
        policy_status_url: the bundle service's ``/status`` (shown in health), or None.
        evaluation: ``sidecar`` (ask OPA per request) or ``in_process`` (the Wasm bundle in the proxy).
        wasm_bundle_url: the bundle service's Wasm bundle (``in_process``).
        bundle_public_key_file: the RSA public key (PEM) the Wasm bundle must be signed with.
        bundle_poll_seconds: how often the proxy asks for a new Wasm bundle, seconds.
        compare_with_sidecar: (``in_process``) also ask OPA at ``url`` and count decisions that
            differ (a differential check; doubles the policy work).
        decision_cache_size: (``in_process``) clock-free decisions kept per process (0: none).
    """

    url: str
    decision_path: str = default(schema.OpaFile, "decision_path")
    timeout_seconds: float = default(schema.OpaFile, "timeout_seconds")
    policy_status_url: str | None = None
    evaluation: str = default(schema.OpaFile, "evaluation")
    wasm_bundle_url: str | None = None
    bundle_public_key_file: Path | None = None
    bundle_poll_seconds: float = default(schema.OpaFile, "bundle_poll_seconds")
    compare_with_sidecar: bool = default(schema.OpaFile, "compare_with_sidecar")
    decision_cache_size: int = default(schema.OpaFile, "decision_cache_size")


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
    format: str = default(schema.CredentialFile, "format")


@dataclass(frozen=True)
class HealthProbe:
    """How ``/_gateway/health`` checks that the WMS answers.

    Attributes:
        path: path (and query) requested on the WMS with GET, e.g. ``/healthz`` or ``/``.
        expect_status: statuses that count as up (a WMS without a health endpoint may
            answer its login page with 200 or 302).
    """

    path: str = default(schema.HealthFile, "path")
    expect_status: tuple[int, ...] = tuple(default(schema.HealthFile, "expect_status"))


def _health_probe(section: schema.HealthFile) -> HealthProbe:
    expect = section.expect_status if isinstance(section.expect_status, list) else [section.expect_status]
    return HealthProbe(section.path, tuple(expect))


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


def _tenant(section: schema.TenantFile | None) -> TenantSettings | None:
    return None if section is None else TenantSettings(section.dimension, section.query_param or None)


def _answers(section: schema.AnswersFile) -> AnswerSettings:
    origins = tuple(o.rstrip("/") for o in section.origins)
    return AnswerSettings(tuple(dict.fromkeys([*BANNER_HEADERS, *section.drop_headers])), section.status_field,
                          origins)


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
    timeout_seconds: float = default(schema.UpstreamFile, "timeout_seconds")
    identity_headers: dict[str, str] = field(default_factory=lambda: default(schema.UpstreamFile, "identity_headers"))
    lookup_headers: dict[str, str] = field(default_factory=lambda: default(schema.UpstreamFile, "lookup_headers"))
    credentials: tuple[CredentialSettings, ...] = ()
    lookup_cache_seconds: float = default(schema.UpstreamFile, "lookup_cache_seconds")
    max_body_bytes: int = default(schema.UpstreamFile, "max_body_bytes")
    max_transform_bytes: int = default(schema.UpstreamFile, "max_transform_bytes")
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
        witness_dir: the audit witness, a folder out of the database's reach that gets a
            copy of every signed checkpoint (None = no witness; see
            :mod:`authorizer.audit.witness`).
    """

    url: str
    flush_interval_seconds: float = default(schema.AuditFile, "flush_interval_seconds")
    batch_size: int = default(schema.AuditFile, "batch_size")
    max_pending: int = default(schema.AuditFile, "max_pending")
    signing_key_file: Path | None = None
    checkpoint_every_records: int = default(schema.AuditFile, "checkpoint_every_records")
    checkpoint_every_seconds: float = default(schema.AuditFile, "checkpoint_every_seconds")
    spool_file: Path | None = None
    spool_max_bytes: int = default(schema.AuditFile, "spool_max_bytes")
    retention_days: float | None = None
    archive_dir: Path | None = None
    archive_every_seconds: float = default(schema.AuditFile, "archive_every_seconds")
    witness_dir: Path | None = None


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
    events_interval_seconds: float = default(schema.KeycloakAdminFile, "events_interval_seconds")


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
    session_idle_seconds: int = default(schema.SsoFile, "session_idle_minutes") * 60
    session_max_seconds: int = default(schema.SsoFile, "session_max_hours") * 3600
    refresh_before_seconds: int = default(schema.SsoFile, "refresh_before_seconds")

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
        step_up_refresh_seconds: how often the gateway reads the people alerts flagged for a
            step-up (``GET /step-up-demands``), seconds.
    """

    url: str
    api_token: str
    timeout_seconds: float = default(schema.AlertingFile, "timeout_seconds")
    step_up_refresh_seconds: float = default(schema.AlertingFile, "step_up_refresh_seconds")


@dataclass(frozen=True)
class ManagementListener:
    """The management listener (``/metrics``), apart from the public one, on loopback by default.

    Attributes:
        host: address to bind (``127.0.0.1``; a private interface for a scraper elsewhere).
        port: TCP port; a process run with ``--worker-index i`` listens on ``port + i``
            (0: any free port, for tests).
    """

    host: str = default(schema.ManagementFile, "host")
    port: int = default(schema.ManagementFile, "port")


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
    approval_sweep_seconds: float = default(schema.ApprovalsFile, "sweep_seconds")
    keycloak_admin: KeycloakAdminConfig | None = None
    sso: SsoSettings | None = None
    revocation_refresh_seconds: float = default(schema.RevocationFile, "refresh_seconds")
    grant_sweep_seconds: float = default(schema.GrantsFile, "sweep_seconds")
    reviews_unreviewed: str = default(schema.AccessReviewsFile, "unreviewed")
    review_min_deadline_hours: float = default(schema.AccessReviewsFile, "min_deadline_hours")
    review_sweep_seconds: float = default(schema.AccessReviewsFile, "sweep_seconds")
    alerting: AlertingLink | None = None
    tls: TlsSettings | None = None
    trust_ca_file: Path | None = None
    mode: str = default(schema.GatewayFile, "mode")
    public_url: str = ""
    enforcement: str = default(schema.GatewayFile, "enforcement")
    management: ManagementListener | None = None
    mask_hash_key_file: Path | None = None
    reveal_minutes: int = default(schema.RevealsFile, "minutes")
    reveal_refresh_seconds: float = default(schema.RevealsFile, "refresh_seconds")
    heap_trim_seconds: float = default(schema.MemoryFile, "trim_seconds")

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


def _required_secret(base: Path, section: schema._Section, key: str, feature: str, needed: bool) -> str | None:
    """The secret a configured feature needs (``<key>`` or ``<key>_file``); a section that is
    there without its secret is an error, never a feature silently turned off (None only when
    not ``needed``: a tool that reads other settings of the file).

    Raises:
        ConfigError: no secret, an unset ``${VARIABLE}``, or an unreadable file.
    """
    fields = section.model_dump()
    try:
        secret = read_secret(base, fields, key)
    except OSError as exc:
        if not needed:  # a tool that reads other settings, run without access to the secrets
            return None
        raise ConfigError(f"config: {feature}.{key}_file cannot be read: {exc}") from None
    if secret is None and not needed:
        return None
    if secret is None:
        given = fields.get(key)
        why = f"{given} is not set" if given else f"neither {key} nor {key}_file is given"
        raise ConfigError(f"config: {feature}.{key}: {why} (leave out the {feature} section to turn it off)")
    return secret


def _credentials(base: Path, items: list[schema.CredentialFile]) -> tuple[CredentialSettings, ...]:
    out = []
    for item in items:
        out.append(CredentialSettings(
            header=item.header,
            file=resolve_path(base, item.file) if item.file is not None else None,
            per_warehouse={k: resolve_path(base, v) for k, v in (item.per_warehouse or {}).items()},
            format=item.format,
        ))
    return tuple(out)


def _sso(base: Path, doc: schema.GatewayFile, need_secrets: bool) -> SsoSettings | None:
    section = doc.sso
    if section is None:
        return None
    secret = _required_secret(base, section, "client_secret", "sso", need_secrets)
    if secret is None:
        return None
    public_url = (section.public_url or f"http://{doc.listen.host}:{doc.listen.port}").rstrip("/")
    return SsoSettings(client_id=section.client_id, client_secret=secret, public_url=public_url,
                       session_idle_seconds=section.session_idle_minutes * 60,
                       session_max_seconds=section.session_max_hours * 3600,
                       refresh_before_seconds=section.refresh_before_seconds)


def _audit(base: Path, audit: schema.AuditFile) -> AuditSettings:
    def path_of(value: str | None) -> Path | None:
        return resolve_path(base, value) if value else None

    return AuditSettings(
        url=store_url(base, audit.url), flush_interval_seconds=audit.flush_interval_seconds,
        batch_size=audit.batch_size, max_pending=audit.max_pending, signing_key_file=path_of(audit.signing_key_file),
        checkpoint_every_records=audit.checkpoint_every_records,
        checkpoint_every_seconds=audit.checkpoint_every_seconds, spool_file=path_of(audit.spool_file),
        spool_max_bytes=audit.spool_max_bytes, retention_days=audit.retention_days,
        archive_dir=path_of(audit.archive_dir), archive_every_seconds=audit.archive_every_seconds,
        witness_dir=path_of(audit.witness_dir))


def _opa(base: Path, opa: schema.OpaFile) -> OpaSettings:
    return OpaSettings(
        url=opa.url.rstrip("/"), decision_path=opa.decision_path, timeout_seconds=opa.timeout_seconds,
        policy_status_url=opa.policy_status_url, evaluation=opa.evaluation, wasm_bundle_url=opa.wasm_bundle_url,
        bundle_public_key_file=resolve_path(base, opa.bundle_public_key_file) if opa.bundle_public_key_file else None,
        bundle_poll_seconds=opa.bundle_poll_seconds, compare_with_sidecar=opa.compare_with_sidecar,
        decision_cache_size=opa.decision_cache_size)


def _upstream(base: Path, up: schema.UpstreamFile) -> UpstreamSettings:
    return UpstreamSettings(
        url=up.url.rstrip("/"), timeout_seconds=up.timeout_seconds, identity_headers=dict(up.identity_headers),
        lookup_headers=dict(up.lookup_headers), credentials=_credentials(base, up.credentials),
        lookup_cache_seconds=up.lookup_cache_seconds, max_body_bytes=up.max_body_bytes,
        max_transform_bytes=up.max_transform_bytes, health=_health_probe(up.health), answers=_answers(up.answers),
        tenant=_tenant(up.tenant))


def load_config(path: Path, overrides: dict[str, Any] | None = None, *, need_secrets: bool = True) -> GatewayConfig:
    """Read and validate a gateway YAML file against :mod:`authorizer.config_schema`.

    Args:
        path: the YAML file.
        overrides: optional top-level values that replace the file's (e.g. ``{"port": 9000}``),
            with dotted keys for nested ones (``{"audit.url": "sqlite+aiosqlite:///x.db"}``).
        need_secrets: a configured feature without its secret is an error (the proxy); False for
            a tool that reads other settings (the audit store's URL): such a feature is then None.

    Returns:
        The typed configuration.

    Raises:
        ConfigError: the file is unreadable or not YAML; a key is unknown, of the wrong type or
            missing (``<file>:<line>: <key>: <problem>``); a configured feature lacks its secret.
    """
    data = read_yaml_mapping(path, "config")
    apply_overrides(data, overrides or {})
    doc = schema.validate_document(path, data)
    base = path.parent.resolve()
    up, listen = doc.upstream, doc.listen
    admin, alerting, tls = doc.keycloak_admin, doc.alerting, listen.tls
    admin_secret = None if admin is None else _required_secret(base, admin, "client_secret", "keycloak_admin",
                                                                need_secrets)
    alerting_token = None if alerting is None else _required_secret(base, alerting, "api_token", "alerting",
                                                                     need_secrets)
    try:
        return GatewayConfig(
            host=listen.host,
            port=listen.port,
            oidc=OidcSettings(
                issuer=doc.oidc.issuer.rstrip("/"), audience=doc.oidc.audience, algorithms=tuple(doc.oidc.algorithms),
                leeway_seconds=doc.oidc.leeway_seconds, jwks_min_refresh_seconds=doc.oidc.jwks_min_refresh_seconds,
                username_claim=doc.oidc.username_claim, roles_claim=doc.oidc.roles_claim,
                scope_claim=doc.oidc.scope_claim, grants_claim=doc.oidc.grants_claim,
                reports_to_claim=doc.oidc.reports_to_claim),
            opa=_opa(base, doc.opa),
            upstream=_upstream(base, up),
            audit=_audit(base, doc.audit),
            route_map=resolve_path(base, doc.route_map),
            trusted_proxies=tuple(doc.trusted_proxies),
            approval_sweep_seconds=doc.approvals.sweep_seconds,
            keycloak_admin=None if admin is None or admin_secret is None else KeycloakAdminConfig(
                admin.client_id, admin_secret, admin.events_interval_seconds),
            sso=_sso(base, doc, need_secrets),
            revocation_refresh_seconds=doc.revocation.refresh_seconds,
            grant_sweep_seconds=doc.grants.sweep_seconds,
            reviews_unreviewed=doc.access_reviews.unreviewed, review_sweep_seconds=doc.access_reviews.sweep_seconds,
            review_min_deadline_hours=doc.access_reviews.min_deadline_hours,
            alerting=None if alerting is None or alerting_token is None else AlertingLink(
                alerting.url.rstrip("/"), alerting_token, alerting.timeout_seconds, alerting.step_up_refresh_seconds),
            tls=None if tls is None else TlsSettings(resolve_path(base, tls.cert_file),
                                                     resolve_path(base, tls.key_file)),
            trust_ca_file=resolve_path(base, doc.trust.ca_file) if doc.trust.ca_file else None,
            mode=doc.mode,  # production: an https issuer off this machine (config_schema.cross_checks)
            public_url=doc.public_url.rstrip("/") if doc.public_url is not None else "",
            enforcement=doc.enforcement,
            management=None if doc.management is None else ManagementListener(doc.management.host,
                                                                              doc.management.port),
            mask_hash_key_file=resolve_path(base, doc.masking.hash_key_file) if doc.masking.hash_key_file else None,
            reveal_minutes=doc.reveals.minutes, reveal_refresh_seconds=doc.reveals.refresh_seconds,
            heap_trim_seconds=doc.memory.trim_seconds,
            strip_request_headers=tuple(dict.fromkeys(
                [*_DEFAULT_STRIP, *doc.strip_request_headers, *up.identity_headers,
                 *(c.header for c in up.credentials)])),
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"config: {exc}") from exc
