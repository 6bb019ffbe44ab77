"""``wmsgate alerts list|show|ack|resolve``: security alerts through the gateway's alert API,
as the logged-in admin (``wmsgate login`` or ``$WMSGATE_TOKEN``)."""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx

from alerting.events import clean_text
from wmsgate.access_cli import CliError, current_token

_SEVERITY_ZH = {"critical": "严重", "high": "高", "medium": "中", "low": "低"}
_STATUS_ZH = {"open": "未处理", "acknowledged": "处理中", "resolved": "已解决"}


def _call(gateway: str, method: str, path: str, params: dict[str, str] | None = None,
          body: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        resp = httpx.request(method, f"{gateway}{path}", params=params, json=body, timeout=30,
                             headers={"Authorization": f"Bearer {current_token()}"})
    except httpx.HTTPError as exc:
        raise CliError(f"gateway unreachable / 无法连接网关: {exc}") from exc
    try:
        doc = resp.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise CliError(f"unexpected answer {resp.status_code} from the gateway")
    if resp.status_code >= 400:
        raise CliError(f"拒绝 / refused ({resp.status_code} {doc.get('error')}): "
                       f"{doc.get('reason_zh')} / {doc.get('reason_en')}")
    return doc


def alert_lines(alerts: list[dict[str, Any]]) -> list[str]:
    """One line per alert: id, status, severity, count, last seen (UTC), title (zh-CN / en)."""
    lines = ["编号 id                           状态 status        级别 severity  "
             "次数 count  最近 last seen (UTC)        告警 alert"]
    for a in alerts:
        status = f"{_STATUS_ZH.get(a['status'], a['status'])} {a['status']}"
        severity = f"{_SEVERITY_ZH.get(a['severity'], a['severity'])} {a['severity']}"
        lines.append(f"{a['alert_id']}  {status:<16} {severity:<10} {a['count']:>6}  {a['last_seen'][:19]:<20}  "
                     f"{clean_text(a['title_zh'])} / {clean_text(a['title_en'])}")  # no terminal escapes
    return lines


def run(gateway: str, args: Any) -> int:
    """Carry out one ``wmsgate alerts`` command; returns the exit status.

    Args:
        gateway: the gateway's base URL.
        args: the parsed command line (``alerts_command``; ``alert_id``, ``status``, ``rule``,
            ``limit``, ``note``, ``json`` where the command has them).

    Raises:
        CliError: not logged in, the gateway refused, or it could not be reached.
    """
    command, alert_id = args.alerts_command, getattr(args, "alert_id", None)
    status, rule, limit = getattr(args, "status", None), getattr(args, "rule", None), getattr(args, "limit", 50)
    note, as_json = getattr(args, "note", None), getattr(args, "json", False)
    if command == "list":
        params = {k: v for k, v in {"status": status, "rule": rule, "limit": str(limit)}.items() if v}
        doc = _call(gateway, "GET", "/_gateway/alerts", params=params)
        if as_json:
            print(json.dumps(doc, ensure_ascii=False, indent=2))
        else:
            print("\n".join(alert_lines(doc["alerts"])))
            counts = doc.get("counts", {})
            print(f"未处理 open {counts.get('open', 0)} · 处理中 acknowledged {counts.get('acknowledged', 0)} · "
                  f"已解决 resolved {counts.get('resolved', 0)}")
        return 0
    if command == "show":
        print(json.dumps(_call(gateway, "GET", f"/_gateway/alerts/{alert_id}"), ensure_ascii=False, indent=2))
        return 0
    action = "acknowledge" if command == "ack" else "resolve"
    doc = _call(gateway, "POST", f"/_gateway/alerts/{alert_id}/{action}", body={"note": note} if note else {})
    print(f"{_STATUS_ZH.get(doc['status'], doc['status'])} / {doc['status']}: "
          f"{clean_text(doc['title_zh'])} / {clean_text(doc['title_en'])}")
    return 0


def main_entry(args: Any) -> int:
    """The argparse entry (see ``wmsgate.cli``)."""
    from wmsgate.access_cli import gateway_url

    try:
        return run(gateway_url(args.gateway), args)
    except CliError as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 1
