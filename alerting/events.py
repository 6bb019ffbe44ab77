"""One shape for every event the detectors see, whatever its source.

Sources: the Keycloak plugin's push documents (``keycloak/event-listener``,
``EventDocuments``), Keycloak's event REST API (``EventRepresentation`` and
``AdminEventRepresentation``) and rows of the gateway's audit trail. Each event has a
stable ``key`` (source kind + id) so the push and the backfill paths never count the
same event twice.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Event kinds.
USER, ADMIN, DECISION = "user", "admin", "decision"


class EventFormatError(ValueError):
    """A document is not an event this service understands."""


@dataclass(frozen=True)
class SecurityEvent:
    """A normalized event.

    Attributes:
        kind: ``user`` (Keycloak login-type event), ``admin`` (Keycloak admin event) or
            ``decision`` (a gateway audit record).
        event_id: the source's id (Keycloak event id, or the audit decision id).
        time_ms: when it happened, milliseconds since the epoch (UTC).
        type: user events: ``LOGIN``, ``LOGIN_ERROR``, ``LOGOUT``...; admin events: the
            operation (``CREATE``, ``UPDATE``, ``DELETE``, ``ACTION``); decisions: ``allow``/``deny``.
        user_id: the person the event is about (user events and decisions), or the
            admin who acted (admin events).
        username: the login name when the source gives it.
        ip: client address.
        user_agent: the browser or tool (push path and decisions only).
        session_id: Keycloak session id (user events).
        client_id: the OIDC client.
        error: Keycloak's error code (``invalid_user_credentials``, ``user_disabled``...).
        details: the rest of the source document (Keycloak details, admin event fields
            ``resource_type``/``resource_path``/``representation``, or the audit row).
    """

    kind: str
    event_id: str
    time_ms: int
    type: str
    user_id: str = ""
    username: str = ""
    ip: str = ""
    user_agent: str = ""
    session_id: str = ""
    client_id: str = ""
    error: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The de-duplication key: ``<kind>:<event_id>``."""
        return f"{self.kind}:{self.event_id}"

    def document(self) -> dict[str, Any]:
        """A JSON-friendly dict (stored with the event, shown as alert evidence)."""
        return {"kind": self.kind, "event_id": self.event_id, "time_ms": self.time_ms, "type": self.type,
                "user_id": self.user_id, "username": self.username, "ip": self.ip, "user_agent": self.user_agent,
                "session_id": self.session_id, "client_id": self.client_id, "error": self.error,
                "details": dict(self.details)}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> SecurityEvent:
        """The inverse of :meth:`document`.

        Raises:
            EventFormatError: a field is missing or of the wrong type.
        """
        try:
            return cls(kind=str(doc["kind"]), event_id=str(doc["event_id"]), time_ms=int(doc["time_ms"]),
                       type=str(doc["type"]), user_id=str(doc.get("user_id") or ""),
                       username=str(doc.get("username") or ""), ip=str(doc.get("ip") or ""),
                       user_agent=str(doc.get("user_agent") or ""), session_id=str(doc.get("session_id") or ""),
                       client_id=str(doc.get("client_id") or ""), error=str(doc.get("error") or ""),
                       details=dict(doc.get("details") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise EventFormatError(f"stored event is malformed: {exc}") from exc


def clean_text(value: Any, limit: int = 256) -> str:
    """``value`` as one line of printable text, at most ``limit`` characters.

    Usernames typed on a login page, user agents and request paths are chosen by
    outsiders and end up in alert titles, chat messages and mail headers: control and
    format characters (line breaks, NUL, bidirectional overrides, zero-width) and line
    or paragraph separators become spaces.
    """
    text = "" if value is None else str(value)
    return "".join(" " if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp") else ch
                   for ch in text[:limit])


def _text(value: Any) -> str:
    return clean_text(value, 1024)


def _required(doc: Mapping[str, Any], name: str) -> Any:
    value = doc.get(name)
    if value is None or value == "":
        raise EventFormatError(f"event field '{name}' is missing")
    return value


def _time(doc: Mapping[str, Any]) -> int:
    value = _required(doc, "time")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise EventFormatError("event field 'time' must be a positive integer (ms since the epoch)")
    return value


def _details(doc: Mapping[str, Any]) -> dict[str, str]:
    details = doc.get("details")
    if details is None:
        return {}
    if not isinstance(details, dict):
        raise EventFormatError("event field 'details' must be an object")
    return {str(k): _text(v) for k, v in details.items()}


def from_push(doc: Any) -> SecurityEvent:
    """An event from the Keycloak plugin's JSON document (``kind`` ``user`` or ``admin``).

    Raises:
        EventFormatError: not an object, unknown kind, or a required field is missing.
    """
    if not isinstance(doc, dict):
        raise EventFormatError("an event must be a JSON object")
    kind = doc.get("kind")
    if kind == USER:
        details = _details(doc)
        return SecurityEvent(
            kind=USER, event_id=str(_required(doc, "id")), time_ms=_time(doc), type=str(_required(doc, "type")),
            user_id=_text(doc.get("user_id")), username=clean_text(details.get("username", "")),
            ip=clean_text(doc.get("ip_address"), 64), user_agent=clean_text(doc.get("user_agent"), 512),
            session_id=_text(doc.get("session_id")),
            client_id=_text(doc.get("client_id")), error=_text(doc.get("error")), details=details)
    if kind == ADMIN:
        auth = doc.get("auth") or {}
        if not isinstance(auth, dict):
            raise EventFormatError("event field 'auth' must be an object")
        return _AdminParts(str(_required(doc, "id")), _time(doc), str(_required(doc, "operation")),
                           _text(doc.get("resource_type")), _text(doc.get("resource_path")), auth,
                           _text(doc.get("error")), _details(doc), doc.get("representation")).event()
    raise EventFormatError("event field 'kind' must be 'user' or 'admin'")


@dataclass(frozen=True)
class _AdminParts:
    """An admin event's fields, however its source spells them (the listener's JSON, the REST API)."""

    event_id: str
    time_ms: int
    operation: str
    resource_type: str
    resource_path: str
    actor: Mapping[str, Any]  # user_id, client_id, ip_address
    error: str
    details: dict[str, str]
    representation: Any

    def event(self) -> SecurityEvent:
        extra: dict[str, Any] = {**self.details, "resource_type": self.resource_type,
                                 "resource_path": self.resource_path}
        if self.representation is not None:
            extra["representation"] = str(self.representation)[:65536]  # read by detectors, never shown
        return SecurityEvent(kind=ADMIN, event_id=self.event_id, time_ms=self.time_ms, type=self.operation,
                             user_id=_text(self.actor.get("user_id")), ip=_text(self.actor.get("ip_address")),
                             client_id=_text(self.actor.get("client_id")), error=self.error, details=extra)


def from_rest_user(rep: Mapping[str, Any]) -> SecurityEvent:
    """An event from Keycloak's ``GET /admin/realms/{realm}/events`` (``EventRepresentation``).

    The REST API keeps no user agent, so devices seen through it are told apart by address only.

    Raises:
        EventFormatError: a required field is missing.
    """
    details = _details(rep)
    return SecurityEvent(
        kind=USER, event_id=str(_required(rep, "id")), time_ms=_time(rep), type=str(_required(rep, "type")),
        user_id=_text(rep.get("userId")), username=clean_text(details.get("username", "")),
        ip=clean_text(rep.get("ipAddress"), 64),
        session_id=_text(rep.get("sessionId")), client_id=_text(rep.get("clientId")), error=_text(rep.get("error")),
        details=details)


def from_rest_admin(rep: Mapping[str, Any]) -> SecurityEvent:
    """An event from Keycloak's ``GET /admin/realms/{realm}/admin-events`` (``AdminEventRepresentation``).

    Raises:
        EventFormatError: a required field is missing.
    """
    auth = rep.get("authDetails") or {}
    actor = {"user_id": auth.get("userId"), "client_id": auth.get("clientId"), "ip_address": auth.get("ipAddress")}
    return _AdminParts(str(_required(rep, "id")), _time(rep), str(_required(rep, "operationType")),
                       _text(rep.get("resourceType")), _text(rep.get("resourcePath")), actor,
                       _text(rep.get("error")), _details(rep), rep.get("representation")).event()


def from_audit(row: Mapping[str, Any]) -> SecurityEvent:
    """An event from one row of the gateway's audit trail (``audit_records``).

    ``details`` keeps the row's fields the detectors read: ``seq``, ``module``, ``verb``,
    ``resource_id``, ``warehouse``, ``channel``, ``reason_code``, ``http_status``,
    ``upstream_status``, ``approval_id``, ``path`` and the record's ``detail``.
    """
    keep = ("seq", "module", "verb", "resource_id", "warehouse", "channel", "reason_code", "http_status",
            "upstream_status", "approval_id", "method", "path", "roles")
    details: dict[str, Any] = {k: (clean_text(row.get(k), 512) if isinstance(row.get(k), str) else row.get(k))
                               for k in keep}
    details["detail"] = dict(row.get("detail") or {})
    return SecurityEvent(kind=DECISION, event_id=str(row["decision_id"]), time_ms=int(row["ts_ms"]),
                         type=str(row["decision"]), user_id=_text(row.get("user_id")),
                         username=clean_text(row.get("username")), ip=clean_text(row.get("client_ip"), 64),
                         user_agent=clean_text(row.get("user_agent"), 512), details=details)
