"""Detector 7: impossible travel. One account logs in at two sites (a warehouse's or office's
network, ``sites`` of the rule) less than ``min_travel_minutes`` apart: nobody gets from one
warehouse to another that fast, so one of the two logins is someone else's. Logins from
addresses in no site are not judged. Like the multi-device alert, it demands a step-up of
the person on their next high-risk request (``demand_step_up``) and its messages carry the
"not me" link.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from alerting.detectors.base import Detection
from alerting.events import USER, SecurityEvent
from alerting.rules import ImpossibleTravelRule, site_network


@dataclass
class _Seen:
    site: str
    at_ms: int
    ip: str
    evidence: str


class ImpossibleTravelDetector:
    """Keeps each account's last login at a site; reports a login at another site too soon after."""

    name = "impossible_travel"

    def __init__(self, rule: ImpossibleTravelRule) -> None:
        self._rule = rule
        self._sites = [found for site in rule.sites if (found := site_network(site)) is not None]
        self._last: dict[str, _Seen] = {}

    def _site_of(self, ip: str) -> str | None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        return next((name for name, network in self._sites if address in network), None)

    def observe(self, event: SecurityEvent) -> list[Detection]:
        """See :class:`alerting.detectors.base.Detector`."""
        if event.kind != USER or event.type != "LOGIN" or not event.user_id or not self._sites:
            return []
        site = self._site_of(event.ip)
        if site is None:
            return []
        before = self._last.get(event.user_id)
        self._last[event.user_id] = _Seen(site, event.time_ms, event.ip, event.key)
        limit_ms = self._rule.min_travel_minutes * 60_000
        if not self._rule.enabled or before is None or before.site == site \
                or not 0 <= event.time_ms - before.at_ms < limit_ms:
            return []
        minutes = (event.time_ms - before.at_ms) / 60_000
        username = event.username or str(event.details.get("username") or event.user_id)
        return [Detection(
            rule=self.name, severity=self._rule.severity,
            group_key=f"{self.name}|{event.user_id}|{'+'.join(sorted({before.site, site}))}", subject=username,
            title_zh=f"账号 {username} 在 {minutes:.0f} 分钟内先后从 {before.site} 和 {site} 登录(不可能的行程)",
            title_en=f"account {username} logged in at {before.site} and then {site} within {minutes:.0f} min "
                     "(impossible travel)",
            evidence=(before.evidence, event.key), at_ms=event.time_ms, group_window_ms=self._rule.group_window_ms,
            facts={"username": username, "user_id": event.user_id, "from_site": before.site, "from_ip": before.ip,
                   "to_site": site, "to_ip": event.ip, "minutes_apart": round(minutes, 1)})]
