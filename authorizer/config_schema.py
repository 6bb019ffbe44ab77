"""The gateway YAML's schema: every key, its type and its default, written once (pydantic).

:func:`validate_document` checks a loaded document against it: an unknown key (a typo such as
``upsteam`` or ``helth``), a wrong type or a missing required setting is refused with the file
and line it is on. :func:`authorizer.config.load_config` then builds the typed settings from
the validated model; a default lives only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from authorizer.authz.scope import SCOPE_DIMENSIONS
from authorizer.tls import is_loopback_url


class ConfigError(ValueError):
    """The configuration file is missing, malformed or names an impossible setting."""


class _Section(BaseModel):
    """A mapping of the file: unknown keys are refused; a key left empty (``health:`` with only a
    comment under it) takes its default, as if it were not there. Types are strict: ``port: true``
    or ``port: "8080"`` is refused, not read as 1 or 8080."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or not _has_default(cls, k)}
        return data


class TlsFile(_Section):
    """``listen.tls``: the certificate and key the public listener serves (PEM)."""

    cert_file: str
    key_file: str


class ListenFile(_Section):
    """``listen``: the public listener."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    tls: TlsFile | None = None


class ManagementFile(_Section):
    """``management``: the listener of ``/metrics`` (port 0: any free port)."""

    host: str = "127.0.0.1"
    port: int = Field(9080, ge=0, le=65535)


class OidcFile(_Section):
    """``oidc``: how bearer tokens are verified (RFC 7519)."""

    issuer: str
    audience: str
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "PS256", "ES256"], min_length=1)
    leeway_seconds: int = Field(30, ge=0)
    jwks_min_refresh_seconds: float = Field(10.0, ge=0)
    username_claim: str = "preferred_username"
    roles_claim: str = "realm_access.roles"
    scope_claim: str = "wms_scope"
    grants_claim: str = "wms_grants"
    reports_to_claim: str = "wms_reports_to"


class OpaFile(_Section):
    """``opa``: the PDP. ``evaluation: sidecar`` asks OPA at ``url`` on every request;
    ``in_process`` evaluates the same bundle compiled to Wasm inside the proxy (fetched from
    ``wasm_bundle_url``, verified with ``bundle_public_key_file``); OPA at ``url`` still answers
    the explain and who-can tools."""

    url: str
    decision_path: str = "wms/authz/decision"
    timeout_seconds: float = Field(2.0, gt=0)
    policy_status_url: str | None = None
    evaluation: Literal["sidecar", "in_process"] = "sidecar"
    wasm_bundle_url: str | None = None
    bundle_public_key_file: str | None = None
    bundle_poll_seconds: float = Field(1.0, gt=0)
    compare_with_sidecar: bool = False
    decision_cache_size: int = Field(4096, ge=0)

    @model_validator(mode="after")
    def _in_process_needs_its_bundle(self) -> OpaFile:
        if self.evaluation == "in_process" and (not self.wasm_bundle_url or not self.bundle_public_key_file):
            raise ValueError("evaluation: in_process needs wasm_bundle_url and bundle_public_key_file "
                             "(the proxy runs only a bundle signed by the policy signing key)")
        return self


def origin_problem(value: str) -> str | None:
    """Why ``value`` is not an origin (``scheme://host[:port]``, a trailing ``/`` allowed), or None."""
    url = value.rstrip("/")
    if not url.startswith(("http://", "https://")) or "/" in url.split("://", 1)[1] or not url.split("://", 1)[1]:
        return f"{value!r} must be scheme://host[:port]"
    return None


class CredentialFile(_Section):
    """One ``upstream.credentials`` entry (exactly one of ``file`` and ``per_warehouse``)."""

    header: str
    file: str | None = None
    per_warehouse: dict[str, str] | None = None
    format: str = "{secret}"

    @field_validator("per_warehouse", mode="before")
    @classmethod
    def _warehouse_codes_are_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            numeric = [k for k in value if not isinstance(k, str)]
            if numeric:
                raise ValueError(f"warehouse codes are text: quote {numeric[0]!r} (YAML reads 007 as the number 7)")
        return value

    @field_validator("format")
    @classmethod
    def _format_has_the_secret(cls, value: str) -> str:
        if "{secret}" not in value:
            raise ValueError("must contain {secret}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> CredentialFile:
        if (self.file is None) == (self.per_warehouse is None):
            raise ValueError("needs exactly one of 'file' and 'per_warehouse'")
        return self


class HealthFile(_Section):
    """``upstream.health``: how the WMS is probed (GET ``path``; ``expect_status`` means up)."""

    path: str = "/healthz"
    expect_status: list[int] | int = Field(default_factory=lambda: [200])

    @field_validator("path")
    @classmethod
    def _a_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be a path on the WMS, starting with /")
        return value

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: list[int] | int) -> list[int] | int:
        statuses = value if isinstance(value, list) else [value]
        if not statuses or not all(100 <= v <= 599 for v in statuses):
            raise ValueError("must be HTTP statuses (100-599)")
        return value


class AnswersFile(_Section):
    """``upstream.answers``: the WMS's answer conventions."""

    drop_headers: list[str] = Field(default_factory=list)
    status_field: str | None = Field(None, min_length=1)
    origins: list[str] = Field(default_factory=list)

    @field_validator("origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            problem = origin_problem(origin)
            if problem:
                raise ValueError(problem)
        return value


class TenantFile(_Section):
    """``upstream.tenant``: one WMS credential per warehouse."""

    dimension: str = "warehouse"
    query_param: str | None = "warehouse"

    @field_validator("dimension")
    @classmethod
    def _a_dimension(cls, value: str) -> str:
        if value not in SCOPE_DIMENSIONS:
            raise ValueError(f"{value!r} is not one of {', '.join(SCOPE_DIMENSIONS)}")
        return value


def default(model: type[BaseModel], name: str) -> Any:
    """The default of ``model``'s field ``name`` (a fresh value for a factory): the runtime settings
    (:mod:`authorizer.config`) take their defaults from here, so each is written once."""
    value = model.model_fields[name].get_default(call_default_factory=True)
    return value


def _has_default(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    return field is not None and not field.is_required()


class UpstreamFile(_Section):
    """``upstream``: the protected WMS."""

    url: str
    timeout_seconds: float = Field(30.0, gt=0)
    identity_headers: dict[str, str] = Field(default_factory=lambda: {"X-WMS-User": "{username}"})
    lookup_headers: dict[str, str] = Field(default_factory=lambda: {"X-WMS-User": "wmsgate-attribute-lookup"})
    credentials: list[CredentialFile] = Field(default_factory=list)
    lookup_cache_seconds: float = Field(2.0, ge=0)
    max_body_bytes: int = Field(1 << 20, gt=0)
    max_transform_bytes: int = Field(32 << 20, gt=0)
    health: HealthFile = Field(default_factory=HealthFile)
    answers: AnswersFile = Field(default_factory=AnswersFile)
    tenant: TenantFile | None = None

    @field_validator("tenant", mode="before")
    @classmethod
    def _empty_tenant_is_off(cls, value: Any) -> Any:
        return None if value == {} else value  # `tenant: {}` has always meant no tenants


class AuditFile(_Section):
    """``audit``: the audit trail's store, writer, spool, checkpoints and retention."""

    url: str
    flush_interval_seconds: float = Field(0.2, gt=0)
    batch_size: int = Field(1000, gt=0)
    max_pending: int = Field(200_000, gt=0)
    signing_key_file: str | None = None
    checkpoint_every_records: int = Field(1000, gt=0)
    checkpoint_every_seconds: float = Field(60.0, gt=0)
    spool_file: str | None = None
    spool_max_bytes: int = Field(256 << 20, gt=0)
    retention_days: float | None = Field(None, gt=0)
    archive_dir: str | None = None
    archive_every_seconds: float = Field(3600.0, gt=0)
    witness_dir: str | None = None

    @model_validator(mode="after")
    def _retention_is_archived_and_signed(self) -> AuditFile:
        if self.retention_days is not None and (self.archive_dir is None or self.signing_key_file is None):
            raise ValueError("retention_days needs archive_dir and signing_key_file (records are removed only "
                             "behind a signed, archived segment)")
        if self.witness_dir is not None and self.signing_key_file is None:
            raise ValueError("witness_dir needs signing_key_file (the witness holds signed checkpoints)")
        return self


class KeycloakAdminFile(_Section):
    """``keycloak_admin``: the service account access changes are made with."""

    client_id: str = "wms-access-admin"
    client_secret: str | None = None
    client_secret_file: str | None = None
    events_interval_seconds: float = Field(1.0, gt=0)


class SsoFile(_Section):
    """``sso``: browser single sign-on (the gateway as an OIDC relying party)."""

    client_id: str = "wms-gateway"
    client_secret: str | None = None
    client_secret_file: str | None = None
    public_url: str | None = Field(None, pattern=r"^https?://")
    session_idle_minutes: int = Field(30, gt=0)
    session_max_hours: int = Field(12, gt=0)
    refresh_before_seconds: int = Field(30, ge=0)


class AlertingFile(_Section):
    """``alerting``: where the alert API finds the alerting service."""

    url: str
    api_token: str | None = None
    api_token_file: str | None = None
    timeout_seconds: float = Field(5.0, gt=0)
    step_up_refresh_seconds: float = Field(2.0, gt=0)


class ApprovalsFile(_Section):
    """``approvals``: how often held requests are swept (expired, approved ones run)."""

    sweep_seconds: float = Field(5.0, gt=0)


class GrantsFile(_Section):
    """``grants``: how often ended temporary grants are swept."""

    sweep_seconds: float = Field(20.0, gt=0)


class AccessReviewsFile(_Section):
    """``access_reviews``: what happens to items nobody reviewed by a campaign's deadline (a
    campaign may say otherwise), and how often deadlines are checked."""

    unreviewed: Literal["revoke", "keep"] = "revoke"
    min_deadline_hours: float = Field(24.0, gt=0)
    sweep_seconds: float = Field(30.0, gt=0)


class RevocationFile(_Section):
    """``revocation``: how often the revocation list is refreshed."""

    refresh_seconds: float = Field(0.5, gt=0)


class MaskingFile(_Section):
    """``masking``: the secret key of ``hash`` masks (keyed HMAC: the same value gives the same
    hash in every answer and export, so records stay joinable; without the key nobody can
    reverse it by hashing guesses). Every gateway process of a deployment reads the same file."""

    hash_key_file: str | None = None


class RevealsFile(_Section):
    """``reveals``: time-boxed reveals of one masked field of one record (``POST /_gateway/reveals``)."""

    minutes: int = Field(10, gt=0, le=240)
    refresh_seconds: float = Field(1.0, gt=0)


class MemoryFile(_Section):
    """``memory``: how often the proxy gives freed C heap pages back (glibc only; see :mod:`proxy.heap`)."""

    trim_seconds: float = Field(30.0, ge=0)

    @field_validator("trim_seconds")
    @classmethod
    def _off_or_at_least_a_second(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("must be 0 (never) or at least 1 second (a trim walks the whole heap)")
        return value


class TrustFile(_Section):
    """``trust``: extra CA certificates for outbound HTTPS (the WMS, Keycloak, OPA)."""

    ca_file: str | None = None


class GatewayFile(_Section):
    """The whole gateway YAML file."""

    mode: Literal["production", "development"] = "production"
    listen: ListenFile = Field(default_factory=ListenFile)
    management: ManagementFile | None = None
    public_url: str | None = None
    oidc: OidcFile
    opa: OpaFile
    upstream: UpstreamFile
    audit: AuditFile
    route_map: str = "routes.yaml"
    trusted_proxies: list[str] = Field(default_factory=list)
    strip_request_headers: list[str] = Field(default_factory=list)
    keycloak_admin: KeycloakAdminFile | None = None
    sso: SsoFile | None = None
    alerting: AlertingFile | None = None
    revocation: RevocationFile = Field(default_factory=RevocationFile)
    approvals: ApprovalsFile = Field(default_factory=ApprovalsFile)
    grants: GrantsFile = Field(default_factory=GrantsFile)
    access_reviews: AccessReviewsFile = Field(default_factory=AccessReviewsFile)
    trust: TrustFile = Field(default_factory=TrustFile)
    masking: MaskingFile = Field(default_factory=MaskingFile)
    reveals: RevealsFile = Field(default_factory=RevealsFile)
    memory: MemoryFile = Field(default_factory=MemoryFile)
    enforcement: Literal["enforce", "report"] = "enforce"

    @field_validator("public_url")
    @classmethod
    def _an_origin(cls, value: str | None) -> str | None:
        problem = origin_problem(value) if value is not None else None
        if problem:
            raise ValueError(f"{problem} (the gateway as clients reach it)")
        return value


def cross_checks(doc: GatewayFile) -> list[tuple[tuple[str | int, ...], str]]:
    """Rules that span sections, as ``(key path, problem)``: in production mode, tokens and keys
    never cross the network in clear (Keycloak over https unless it runs on this machine)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    issuer = doc.oidc.issuer
    if doc.mode == "production" and issuer.startswith("http://") and not is_loopback_url(issuer):
        problems.append((("oidc", "issuer"), f"{issuer} must be https in production mode (tokens and keys would "
                                             "cross the network in clear); set mode: development for a test stack"))
    return problems


def key_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """The 1-based line of every key (and list item) of a YAML document, by its path.

    Returns:
        ``{("upstream", "health", "path"): 31, ("upstream", "credentials", 0): 40, ...}``;
        empty when the text is not YAML (the loader reports that).
    """
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    lines: dict[tuple[str | int, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                lines[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    if root is not None:
        walk(root, ())
    return lines


def _where(path: Path, lines: dict[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> str:
    """``file:line`` of the deepest part of ``loc`` that is in the file (else of its section)."""
    for end in range(len(loc), 0, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return f"{path}:{line}"
    return str(path)


def validate_document(path: Path, data: dict[str, Any]) -> GatewayFile:
    """Check a loaded gateway document (after overrides) against :class:`GatewayFile`.

    Args:
        path: the file it came from (for ``file:line`` in errors).
        data: its mapping.

    Returns:
        The validated model, every default filled in.

    Raises:
        ConfigError: ``<file>:<line>: <dotted.key>: <problem>`` for each problem.
    """
    try:
        doc = GatewayFile.model_validate(data)
    except ValidationError as exc:
        found = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p in ("function-after",)))
            message = "unknown key (a typo?)" if error["type"] == "extra_forbidden" else error["msg"]
            found.append((loc, message.removeprefix("Value error, ")))
        raise _located(path, found) from None
    problems = cross_checks(doc)
    if problems:
        raise _located(path, problems)
    return doc


def _located(path: Path, problems: list[tuple[tuple[str | int, ...], str]]) -> ConfigError:
    """One error naming every problem as ``<file>:<line>: <dotted.key>: <problem>``."""
    try:
        lines = key_lines(path.read_text(encoding="utf-8"))
    except OSError:
        lines = {}
    return ConfigError("config: " + "; ".join(
        f"{_where(path, lines, loc)}: {'.'.join(str(p) for p in loc) or '(top)'}: {message}"
        for loc, message in problems))
