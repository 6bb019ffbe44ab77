"""The alerting service's configuration (``config/alerting.yaml``): typed and validated.

``${VAR}`` is expanded from the environment; relative paths are resolved against the
file's folder; secrets may come from files (``secret_file``, ``token_file``...).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authorizer.config import ConfigError, apply_overrides, read_secret, read_yaml_mapping, resolve_path
from authorizer.config import store_url as resolve_store_url

NOTIFIER_KINDS = ("webhook", "dingtalk", "wecom", "slack", "email")


@dataclass(frozen=True)
class KeycloakSource:
    """Where the backfill reads Keycloak's stored events.

    Attributes:
        url: Keycloak's base URL.
        realm: the realm.
        client_id, client_secret: a service account with ``view-events`` and ``view-users``.
        interval_seconds: time between backfill passes, seconds.
        first_lookback_hours: how far back the very first pass reads.
    """

    url: str
    realm: str
    client_id: str
    client_secret: str
    interval_seconds: float = 30.0
    first_lookback_hours: float = 24.0


@dataclass(frozen=True)
class NotifierSettings:
    """One delivery channel.

    Attributes:
        kind: ``webhook``, ``dingtalk``, ``wecom``, ``slack`` or ``email``.
        name: unique name (deliveries are tracked by it).
        url: the webhook / robot URL (not e-mail).
        secret: webhook HMAC key or DingTalk signing secret, or None.
        host, port, security, username, password, sender, recipients: SMTP settings (e-mail).
        timeout_seconds: limit of one attempt.
    """

    kind: str
    name: str
    url: str = ""
    secret: str | None = None
    host: str = ""
    port: int = 25
    security: str = "starttls"
    username: str | None = None
    password: str | None = None
    sender: str = ""
    recipients: tuple[str, ...] = ()
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class Pacing:
    """How robots are paced and alerts escalated.

    Attributes:
        window_seconds: per robot and rule, at most one message per window (a digest).
        per_minute: at most this many messages to one robot in any 60 seconds.
        escalate_after_seconds: escalate alerts still open this long after they were raised
            (None: never).
        escalate_to: the notifiers escalations go to (empty: every notifier).
    """

    window_seconds: float = 60.0
    per_minute: int = 20
    escalate_after_seconds: float | None = None
    escalate_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertingConfig:
    """Everything the service needs.

    Attributes:
        host, port: where it listens (loopback by default).
        store_url: SQLAlchemy async URL of the alert store.
        events_secret: HMAC-SHA256 key of the plugin's pushed events (the SPI option ``secret``).
        api_token: bearer token of the alert API (the gateway's management API uses it).
        keycloak: the backfill source, or None (push only).
        audit_url: the gateway's audit store to read decisions from, or None.
        audit_poll_seconds: time between audit polls, seconds.
        rules_file: detector rules (None: defaults).
        notifiers: delivery channels.
        retry_initial_seconds, retry_max_seconds: delivery backoff, seconds.
        pacing: robot pacing (digest window, rate) and escalation of unacknowledged alerts.
        console_url: the gateway's public URL (links in messages), or None.
        max_event_bytes: largest pushed event accepted.
        event_retention_days: stored events older than this are deleted (alerts stay).
        trust_ca_file: an extra CA bundle (PEM) trusted for outbound HTTPS (Keycloak, webhooks,
            robots), besides the system's CAs; None = the system's only.
    """

    host: str
    port: int
    store_url: str
    events_secret: str
    api_token: str
    keycloak: KeycloakSource | None = None
    audit_url: str | None = None
    audit_poll_seconds: float = 1.0
    rules_file: Path | None = None
    notifiers: tuple[NotifierSettings, ...] = ()
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    pacing: Pacing = field(default_factory=Pacing)
    console_url: str | None = None
    max_event_bytes: int = 1 << 20
    event_retention_days: int = 30
    trust_ca_file: Path | None = None


def _pacing(delivery: dict[str, Any], names: list[str]) -> Pacing:
    """``delivery.robot_window_seconds`` (60), ``robot_per_minute`` (20),
    ``escalate_after_minutes`` (none) and ``escalate_to`` (notifier names; default all)."""
    escalate = delivery.get("escalate_after_minutes")
    to = tuple(str(n) for n in delivery.get("escalate_to") or ())
    unknown = [n for n in to if n not in names]
    if unknown:
        raise ConfigError(f"alerting config: delivery.escalate_to names unknown notifiers: {', '.join(unknown)}")
    pacing = Pacing(window_seconds=float(delivery.get("robot_window_seconds", 60)),
                    per_minute=int(delivery.get("robot_per_minute", 20)),
                    escalate_after_seconds=None if escalate is None else float(escalate) * 60, escalate_to=to)
    if pacing.window_seconds < 0 or pacing.per_minute < 1 or (escalate is not None and float(escalate) <= 0):
        raise ConfigError("alerting config: delivery.robot_window_seconds >= 0, robot_per_minute >= 1 and "
                          "escalate_after_minutes > 0 are required")
    return pacing


def _notifier(base: Path, item: Any, index: int) -> NotifierSettings:
    if not isinstance(item, dict) or item.get("kind") not in NOTIFIER_KINDS:
        raise ConfigError(f"alerting config: notifiers[{index}].kind must be one of {', '.join(NOTIFIER_KINDS)}")
    kind = item["kind"]
    name = str(item.get("name") or f"{kind}-{index}")
    if not name.isascii() or not name.isprintable() or len(name) > 64:
        raise ConfigError(f"alerting config: notifiers[{index}].name must be printable ASCII, at most 64 characters")
    timeout = float(item.get("timeout_seconds", 10))
    if kind == "email":
        recipients = item.get("to") or []
        if not item.get("host") or not item.get("from") or not isinstance(recipients, list) or not recipients:
            raise ConfigError(f"alerting config: e-mail notifier {name} needs host, from and a list 'to'")
        security = str(item.get("security", "starttls"))
        if security not in ("none", "starttls", "tls"):
            raise ConfigError(f"alerting config: notifier {name}: security must be none, starttls or tls")
        return NotifierSettings(kind=kind, name=name, host=str(item["host"]), port=int(item.get("port", 25)),
                                security=security, username=item.get("username"),
                                password=read_secret(base, item, "password"), sender=str(item["from"]),
                                recipients=tuple(str(r) for r in recipients), timeout_seconds=timeout)
    url = os.path.expandvars(str(item.get("url") or ""))
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"alerting config: notifier {name} needs an http(s) url")
    return NotifierSettings(kind=kind, name=name, url=url, secret=read_secret(base, item, "secret"),
                            timeout_seconds=timeout)


def load_alerting_config(path: Path, overrides: dict[str, Any] | None = None) -> AlertingConfig:
    """Read and validate the alerting YAML file (see :func:`_load`).

    Raises:
        ConfigError: every problem, with a message naming the setting (never a traceback).
    """
    try:
        return _load(path, overrides)
    except ConfigError:
        raise
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"alerting config {path}: {type(exc).__name__}: {exc}") from exc


def _load(path: Path, overrides: dict[str, Any] | None = None) -> AlertingConfig:
    """Read and validate the alerting YAML file.

    Args:
        path: the file.
        overrides: values replacing the file's (dotted keys, e.g. ``{"listen.port": 18070}``).

    Raises:
        ConfigError: missing file, malformed YAML, a missing secret, a bad notifier.
    """
    data = read_yaml_mapping(path, "alerting config")
    apply_overrides(data, overrides or {})
    base = path.parent
    listen = data.get("listen") or {}
    intake = data.get("intake") or {}
    api = data.get("api") or {}
    secret = read_secret(base, intake, "secret")
    token = read_secret(base, api, "token")
    if not secret:
        raise ConfigError("alerting config: intake.secret (or secret_file) is required: pushed events are signed")
    if not token or len(token) < 16:
        raise ConfigError("alerting config: api.token (or token_file) of at least 16 characters is required")
    keycloak = None
    kc = data.get("keycloak") or {}
    kc_secret = read_secret(base, kc, "client_secret") if kc else None
    if kc and not kc_secret:
        raise ConfigError("alerting config: keycloak.client_secret (or client_secret_file) is required: without it "
                          "events from while the service was down are never read back (leave out the whole "
                          "keycloak section to run on pushed events only)")
    if kc and kc_secret:
        keycloak = KeycloakSource(url=str(kc["url"]), realm=str(kc.get("realm", "wms")),
                                  client_id=str(kc.get("client_id", "wms-alerting")), client_secret=kc_secret,
                                  interval_seconds=float(kc.get("backfill_interval_seconds", 30)),
                                  first_lookback_hours=float(kc.get("first_lookback_hours", 24)))
    audit = data.get("gateway_audit") or {}
    delivery = data.get("delivery") or {}
    notifiers = tuple(_notifier(base, item, i) for i, item in enumerate(data.get("notifiers") or []))
    names = [n.name for n in notifiers]
    if len(set(names)) != len(names):
        raise ConfigError("alerting config: notifier names must be unique")
    store = resolve_store_url(base, str((data.get("store") or {}).get("url", "")))
    if not store:
        raise ConfigError("alerting config: store.url is required")
    return AlertingConfig(
        host=str(listen.get("host", "127.0.0.1")), port=int(listen.get("port", 8070)), store_url=store,
        events_secret=secret, api_token=token, keycloak=keycloak,
        audit_url=resolve_store_url(base, str(audit["url"])) if audit.get("url") else None,
        audit_poll_seconds=float(audit.get("poll_seconds", 1)),
        rules_file=resolve_path(base, str(data["rules"])) if data.get("rules") else None,
        notifiers=notifiers, retry_initial_seconds=float(delivery.get("retry_initial_seconds", 1)),
        retry_max_seconds=float(delivery.get("retry_max_seconds", 300)),
        pacing=_pacing(delivery, names),
        console_url=str(data["console_url"]).rstrip("/") if data.get("console_url") else None,
        max_event_bytes=int(intake.get("max_event_bytes", 1 << 20)),
        event_retention_days=int(data.get("event_retention_days", 30)),
        trust_ca_file=resolve_path(base, str(data["trust"]["ca_file"])) if (data.get("trust") or {}).get("ca_file")
        else None)
