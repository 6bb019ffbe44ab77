"""Detector 1: one account with live sessions on two or more devices at once.

A device is the client address plus the user agent (the plugin sends the user agent;
events read back from Keycloak's REST API have none, so there the address alone counts),
or a ``device_id`` detail where a client sends one. A login's session is live until
Keycloak reports its logout, an admin logs the person out, deletes or disables them, or
``session_ttl_minutes`` pass without a token refresh on it. Only new sessions count: a LOGIN
on a session already live (Keycloak reports one for every SSO re-entry, keycloak#24498) only
keeps it alive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from alerting.detectors.base import Detection
from alerting.events import ADMIN, USER, SecurityEvent
from alerting.rules import MultiDeviceRule

_USER_PATH = re.compile(r"^users/([^/]+)(/logout)?$")
_SESSION_PATH = re.compile(r"^sessions/([^/]+)$")


@dataclass
class _Session:
    device: str
    login_ms: int
    last_ms: int
    evidence: str
    ip: str
    user_agent: str


def device_of(event: SecurityEvent) -> str:
    """The device key of a login: ``device_id`` detail, else ``ip`` + ``|`` + user agent (or the ip alone)."""
    device_id = event.details.get("device_id")
    if device_id:
        return f"id:{device_id}"
    return f"{event.ip}|{event.user_agent}" if event.user_agent else event.ip


def distinct_devices(keys: list[str]) -> set[str]:
    """The devices among device keys: a key without a user agent (a login read back from
    Keycloak, which keeps none) stands for every key of the same address, so one browser
    seen once pushed and once read back counts once."""
    bare = {k for k in keys if "|" not in k and not k.startswith("id:")}
    return {k.split("|", 1)[0] if k.split("|", 1)[0] in bare else k for k in keys}


class MultiDeviceDetector:
    """Tracks live sessions per account; reports when they span ``min_devices`` devices.

    The group key names the set of devices, so logging in again from the same devices
    is counted on the open alert, while a new device makes a new alert.
    """

    name = "multi_device_login"

    def __init__(self, rule: MultiDeviceRule) -> None:
        self._rule = rule
        self._ttl_ms = rule.session_ttl_minutes * 60_000
        self._sessions: dict[str, dict[str, _Session]] = {}
        self._logins = 0

    def _forget_ended(self, now_ms: int) -> None:
        """Drop timed-out sessions of every account (bounded memory)."""
        for user_id in list(self._sessions):
            live = {k: s for k, s in self._sessions[user_id].items() if s.last_ms + self._ttl_ms >= now_ms}
            if live:
                self._sessions[user_id] = live
            else:
                del self._sessions[user_id]

    def observe(self, event: SecurityEvent) -> list[Detection]:
        """See :class:`alerting.detectors.base.Detector`."""
        if event.kind == ADMIN:
            self._admin(event)
            return []
        if event.kind != USER or not event.user_id:
            return []
        if event.type == "LOGOUT":
            self._sessions.get(event.user_id, {}).pop(event.session_id, None)
            return []
        if event.type in ("REFRESH_TOKEN", "CODE_TO_TOKEN") and event.session_id:
            live = self._sessions.get(event.user_id, {}).get(event.session_id)
            if live is not None:
                live.last_ms = max(live.last_ms, event.time_ms)
            return []
        if event.type != "LOGIN" or not self._rule.enabled:
            return []
        self._logins += 1
        if self._logins % 1000 == 0:
            self._forget_ended(event.time_ms)
        sessions = self._sessions.setdefault(event.user_id, {})
        known = sessions.get(event.session_id) if event.session_id else None
        device = device_of(event)
        if known is not None and known.last_ms + self._ttl_ms >= event.time_ms \
                and len(distinct_devices([known.device, device])) == 1:
            # Keycloak also reports LOGIN when a live SSO session is reused (a page reload,
            # check-sso, another client; keycloak#24498): the same session on the same device,
            # not a new one. The same session from another device (a stolen SSO cookie) counts.
            known.last_ms = max(known.last_ms, event.time_ms)
            return []
        key = event.session_id if known is None else f"{event.session_id}|{device}"
        sessions[key or event.key] = _Session(device, event.time_ms, event.time_ms, event.key,
                                                           event.ip, event.user_agent)
        for key in [k for k, s in sessions.items() if s.last_ms + self._ttl_ms < event.time_ms]:
            del sessions[key]
        devices = distinct_devices([s.device for s in sessions.values()])
        if len(devices) < self._rule.min_devices:
            return []
        username = event.username or event.user_id
        seen = sorted({(s.ip, s.user_agent) for s in sessions.values()})
        return [Detection(
            rule=self.name, severity=self._rule.severity,
            group_key=f"{self.name}|{event.user_id}|{'+'.join(sorted(devices))}", subject=username,
            title_zh=f"账号 {username} 同时在 {len(devices)} 台设备上登录",
            title_en=f"account {username} is logged in on {len(devices)} devices at once",
            evidence=tuple(s.evidence for s in sorted(sessions.values(), key=lambda s: s.login_ms)),
            at_ms=event.time_ms, group_window_ms=self._rule.group_window_ms,
            facts={"username": username, "user_id": event.user_id,
                   "devices": [{"ip": ip, "user_agent": ua} for ip, ua in seen]})]

    def _admin(self, event: SecurityEvent) -> None:
        path = str(event.details.get("resource_path", ""))
        match = _USER_PATH.match(path)
        if match:
            user_id, logout = match.groups()
            disabled = '"enabled":false' in str(event.details.get("representation", "")).replace(" ", "")
            if logout or event.type == "DELETE" or (event.type == "UPDATE" and disabled):
                self._sessions.pop(user_id, None)
            return
        match = _SESSION_PATH.match(path)
        if match and event.type == "DELETE":
            for sessions in self._sessions.values():
                sessions.pop(match.group(1), None)
