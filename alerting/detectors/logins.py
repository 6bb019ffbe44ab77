"""Detectors 4 and 5: failed-login bursts (per account and per client address), and a
disabled, offboarded or revoked account trying to get in.

Keycloak reports failed logins as ``LOGIN_ERROR`` events (the attempted username is in
``details.username`` even when no such user exists). A shut account shows up as a
Keycloak login error (``user_disabled``: offboarded people, and temporary accounts once
their grants ended), or at the gateway: a token issued before offboarding
(``token_revoked``), or a temporary grant used after its window (``grant_outside_window``).
"""

from __future__ import annotations

from alerting.detectors.base import Detection, WindowCounter
from alerting.events import DECISION, USER, SecurityEvent
from alerting.rules import BlockedAccountRule, FailedLoginRule

#: How a gateway refusal reads in an alert, by reason code.
_GATEWAY_HOW = {
    "token_revoked": ("用已吊销的令牌访问网关", "used a revoked token at the gateway"),
    "tokens_revoked_before": ("用吊销前签发的令牌访问网关", "used a token issued before its revocation"),
    "grant_outside_window": ("在临时授权到期后仍使用该权限", "used a temporary grant after it ended"),
}


class FailedLoginDetector:
    """``per_account`` or ``per_ip`` ``LOGIN_ERROR`` events within ``window_seconds``."""

    name = "failed_login_burst"

    def __init__(self, rule: FailedLoginRule) -> None:
        self._rule = rule
        self._accounts = WindowCounter(rule.window_seconds * 1000)
        self._addresses = WindowCounter(rule.window_seconds * 1000)

    def observe(self, event: SecurityEvent) -> list[Detection]:
        """See :class:`alerting.detectors.base.Detector`."""
        if event.kind != USER or event.type != "LOGIN_ERROR" or not self._rule.enabled:
            return []
        found: list[Detection] = []
        seconds = self._rule.window_seconds
        account = event.username or event.user_id
        # Keycloak matches usernames ignoring case and also takes the e-mail address: count
        # per account id when Keycloak knows the account, else per name as it would match it
        key = event.user_id or account.strip().casefold()
        if key:
            evidence = self._accounts.add(key, event.time_ms, event.key)
            if len(evidence) >= self._rule.per_account:
                found.append(self._detection(
                    f"account|{key}", account, evidence, event,
                    f"账号 {account} 在 {seconds} 秒内登录失败 {len(evidence)} 次",
                    f"{len(evidence)} failed logins for account {account} within {seconds} s"))
        if event.ip:
            evidence = self._addresses.add(event.ip, event.time_ms, event.key)
            if len(evidence) >= self._rule.per_ip:
                found.append(self._detection(
                    f"ip|{event.ip}", event.ip, evidence, event,
                    f"地址 {event.ip} 在 {seconds} 秒内登录失败 {len(evidence)} 次",
                    f"{len(evidence)} failed logins from {event.ip} within {seconds} s"))
        return found

    def _detection(self, key: str, subject: str, evidence: list[str], event: SecurityEvent, zh: str,
                   en: str) -> Detection:
        return Detection(rule=self.name, severity=self._rule.severity, group_key=f"{self.name}|{key}",
                         subject=subject, title_zh=zh, title_en=en, evidence=tuple(evidence), at_ms=event.time_ms,
                         group_window_ms=self._rule.group_window_ms,
                         facts={"failures": len(evidence), "window_seconds": self._rule.window_seconds,
                                "last_error": event.error, "ip": event.ip, "username": event.username})


class BlockedAccountDetector:
    """Every login attempt of a shut account, and every gateway refusal of a revoked token."""

    name = "blocked_account_login"

    def __init__(self, rule: BlockedAccountRule) -> None:
        self._rule = rule

    def observe(self, event: SecurityEvent) -> list[Detection]:
        """See :class:`alerting.detectors.base.Detector`."""
        if not self._rule.enabled:
            return []
        if event.kind == USER and event.type == "LOGIN_ERROR" and event.error in self._rule.keycloak_errors:
            how_zh, how_en = f"在 Keycloak 登录被拒({event.error})", f"tried to log in at Keycloak ({event.error})"
        elif event.kind == DECISION and event.type == "deny" \
                and event.details.get("reason_code") in self._rule.gateway_reason_codes:
            code = str(event.details.get("reason_code"))
            how_zh, how_en = _GATEWAY_HOW.get(code, (f"被网关拒绝({code})", f"was refused at the gateway ({code})"))
        else:
            return []
        account = event.username or event.user_id or "unknown"
        if event.error == "user_temporarily_disabled":  # Keycloak's brute-force lockout, not an admin's doing
            title_zh = f"被临时锁定的账号 {account} 仍在尝试登录(暴力破解防护)"
            title_en = f"locked-out account {account} still tried to log in (brute-force protection)"
        else:
            title_zh = f"已停用、已离职或授权已到期的账号 {account} {how_zh}"
            title_en = f"disabled, offboarded or expired account {account} {how_en}"
        return [Detection(
            rule=self.name, severity=self._rule.severity, group_key=f"{self.name}|{account}", subject=account,
            title_zh=title_zh, title_en=title_en,
            evidence=(event.key,), at_ms=event.time_ms, group_window_ms=self._rule.group_window_ms,
            facts={"username": account, "ip": event.ip, "source": event.kind,
                   "error": event.error or str(event.details.get("reason_code") or "")})]
