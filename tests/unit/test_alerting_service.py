"""The alerting service's edges without the real stack: configuration, the push intake's
signature check and event parsing, notifier message formats (against local receivers)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alerting.config import load_alerting_config
from alerting.events import EventFormatError, from_audit, from_push, from_rest_admin, from_rest_user
from alerting.intake import signature_valid
from alerting.notifiers import (
    DingTalkNotifier,
    EmailNotifier,
    NotifierError,
    SlackNotifier,
    SmtpServer,
    WebhookNotifier,
    WeComNotifier,
)
from alerting.notifiers.robots import dingtalk_signed_url
from authorizer.config import ConfigError
from tests.support.local_http import serving

REPO = Path(__file__).resolve().parents[2]
ALERT = {"alert_id": "a" * 32, "rule": "multi_device_login", "severity": "high", "status": "open",
         "subject": "picker.hf", "title_zh": "账号 picker.hf 同时在 2 台设备上登录",
         "title_en": "account picker.hf is logged in on 2 devices at once", "count": 1,
         "first_seen": "2026-11-29T10:00:00.000+00:00", "last_seen": "2026-11-29T10:00:01.000+00:00",
         "evidence": ["user:e1", "user:e2"], "facts": {"username": "picker.hf"}}


def test_the_shipped_config_loads_with_its_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WMSGATE_EVENTS_SECRET", "s3cret")
    monkeypatch.setenv("WMSGATE_ALERTING_API_TOKEN", "t" * 24)
    monkeypatch.setenv("WMSGATE_ALERTING_CLIENT_SECRET", "kc")
    config = load_alerting_config(REPO / "config" / "alerting.yaml")
    assert config.events_secret == "s3cret" and config.keycloak is not None and config.keycloak.realm == "wms"
    assert config.rules_file == REPO / "config" / "alert-rules.yaml" and config.notifiers == ()


@pytest.mark.parametrize("overrides, message", [
    ({"intake.secret": ""}, "intake.secret"),
    ({"api.token": "short"}, "api.token"),
    ({"notifiers": [{"kind": "pager"}]}, "kind must be one of"),
    ({"notifiers": [{"kind": "webhook", "url": "ftp://x"}]}, "http"),
    ({"notifiers": [{"kind": "email", "host": "h", "from": "a@b"}]}, "list 'to'"),
    ({"notifiers": [{"kind": "slack", "name": "x", "url": "http://a"}, {"kind": "wecom", "name": "x",
                                                                         "url": "http://b"}]}, "unique"),
    ({"notifiers": [{"kind": "slack", "name": "n" * 65, "url": "http://a"}]}, "at most 64"),
    ({"keycloak.client_secret": ""}, "keycloak.client_secret"),
    ({"listen.port": "eighty"}, "ValueError"),
])
def test_a_broken_config_is_refused_with_a_reason(monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any],
                                                  message: str) -> None:
    monkeypatch.setenv("WMSGATE_EVENTS_SECRET", "s3cret")
    monkeypatch.setenv("WMSGATE_ALERTING_API_TOKEN", "t" * 24)
    monkeypatch.setenv("WMSGATE_ALERTING_CLIENT_SECRET", "kc")
    with pytest.raises(ConfigError, match=message):
        load_alerting_config(REPO / "config" / "alerting.yaml", overrides)


def test_signatures_are_checked_over_the_exact_body() -> None:
    body = b'{"kind":"user"}'
    good = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature_valid("k", body, good)
    assert not signature_valid("k", body + b" ", good)
    assert not signature_valid("other", body, good)
    assert not signature_valid("k", body, None) and not signature_valid("k", body, good.removeprefix("sha256="))


def test_push_rest_and_audit_documents_become_the_same_event_shape() -> None:
    pushed = from_push({"kind": "user", "id": "e1", "time": 1700000000000, "type": "LOGIN", "user_id": "u1",
                        "session_id": "s1", "ip_address": "127.0.0.2", "user_agent": "UA",
                        "details": {"username": "picker.hf"}})
    pulled = from_rest_user({"id": "e1", "time": 1700000000000, "type": "LOGIN", "userId": "u1", "sessionId": "s1",
                             "ipAddress": "127.0.0.2", "details": {"username": "picker.hf"}})
    assert pushed.key == pulled.key == "user:e1" and pushed.username == pulled.username == "picker.hf"
    assert pushed.user_agent == "UA" and pulled.user_agent == ""
    admin = from_rest_admin({"id": "a1", "time": 1700000000000, "operationType": "CREATE",
                             "resourceType": "REALM_ROLE_MAPPING", "resourcePath": "users/u1/role-mappings/realm",
                             "authDetails": {"userId": "admin-1", "ipAddress": "127.0.0.1"}})
    assert admin.key == "admin:a1" and admin.user_id == "admin-1"
    assert admin.details["resource_path"] == "users/u1/role-mappings/realm"
    decision = from_audit({"decision_id": "d1", "ts_ms": 1700000000000, "decision": "allow", "user_id": "u9",
                           "username": "supervisor", "client_ip": "127.0.0.1", "module": "orders", "verb": "delete",
                           "detail": {"high_risk": "order_delete"}})
    assert decision.key == "decision:d1" and decision.details["detail"]["high_risk"] == "order_delete"


@pytest.mark.parametrize("doc, message", [
    ([], "JSON object"),
    ({"kind": "other"}, "kind"),
    ({"kind": "user", "time": 1, "type": "LOGIN"}, "'id'"),
    ({"kind": "user", "id": "e", "time": "yesterday", "type": "LOGIN"}, "'time'"),
    ({"kind": "user", "id": "e", "time": 1, "type": "LOGIN", "details": []}, "'details'"),
])
def test_malformed_pushed_events_are_refused(doc: Any, message: str) -> None:
    with pytest.raises(EventFormatError, match=message):
        from_push(doc)


def test_dingtalk_signature_follows_the_robot_documentation() -> None:
    url = dingtalk_signed_url("https://oapi.dingtalk.com/robot/send?access_token=abc", "SECxyz", 1700000000000)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    expected = base64.b64encode(hmac.new(b"SECxyz", b"1700000000000\nSECxyz", hashlib.sha256).digest()).decode()
    assert query["timestamp"] == ["1700000000000"] and query["sign"] == [expected]
    assert query["access_token"] == ["abc"]


def test_each_channel_sends_its_own_format_and_a_refusal_is_a_failure() -> None:
    seen: list[tuple[str, dict[str, str], Any]] = []
    answers = {"/ding": {"errcode": 0}, "/wecom": {"errcode": 93000, "errmsg": "invalid webhook url"}}

    async def receive(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.headers), await request.json()))
        return web.json_response(answers.get(request.path, {"ok": True}))

    async def scenario() -> list[str]:
        app = web.Application()
        app.router.add_post("/{name}", receive)
        failures = []
        async with serving(app) as base, aiohttp.ClientSession() as session:
            for notifier in (WebhookNotifier("hook", f"{base}/hook", "k", session),
                             DingTalkNotifier("ding", f"{base}/ding", "SEC1", session, "http://gw"),
                             WeComNotifier("wecom", f"{base}/wecom", session),
                             SlackNotifier("slack", f"{base}/slack", session)):
                try:
                    await notifier.send(ALERT)
                except NotifierError as exc:
                    failures.append(f"{notifier.name}: {exc}")
        return failures

    failures = asyncio.run(scenario())
    assert len(failures) == 1 and failures[0].startswith("wecom: WeCom refused")
    by_path = {path: (headers, body) for path, headers, body in seen}
    headers, body = by_path["/hook"]
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert body["alert"]["alert_id"] == ALERT["alert_id"] and headers["X-WMS-Alert-Id"] == ALERT["alert_id"]
    assert headers["X-WMS-Signature"] == "sha256=" + hmac.new(b"k", raw, hashlib.sha256).hexdigest()
    _, ding = by_path["/ding"]
    assert ding["msgtype"] == "markdown" and ding["markdown"]["text"].startswith("### [WMS 告警 alert/高 high]")
    assert "http://gw/_gateway/ui/alerts" in ding["markdown"]["text"]
    assert by_path["/wecom"][1]["markdown"]["content"].startswith("**[WMS 告警")
    assert "picker.hf" in by_path["/slack"][1]["text"]


def test_an_unreachable_channel_is_a_failure_not_a_crash() -> None:
    async def scenario() -> str:
        async with aiohttp.ClientSession() as session:
            try:
                await WebhookNotifier("hook", "http://127.0.0.1:9/x", None, session, timeout_seconds=2).send(ALERT)
            except NotifierError as exc:
                return str(exc)
        return "sent"
    assert asyncio.run(scenario()) != "sent"
    mail = EmailNotifier("mail", SmtpServer("127.0.0.1", 9, security="none"), "a@example.test", ["b@example.test"])
    with pytest.raises(NotifierError, match="SMTP 127.0.0.1:9"):
        asyncio.run(mail.send(ALERT))
    message = mail.message(ALERT)
    assert message["Subject"].startswith("[WMS 告警") and ALERT["alert_id"] in message["Message-ID"]
    assert message.get_content().splitlines()[0] == ALERT["title_zh"]


def test_the_service_takes_signed_events_once_and_guards_its_api(tmp_path: Path) -> None:
    from alerting.app import create_app
    from alerting.config import AlertingConfig

    config = AlertingConfig(host="127.0.0.1", port=0, store_url=f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}",
                            events_secret="s3cret", api_token="t" * 24, max_event_bytes=2048)

    def signed(doc: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(doc).encode()
        return body, {"X-WMS-Signature": "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()}

    async def scenario() -> dict[str, Any]:
        runner = web.AppRunner(create_app(config))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        out: dict[str, Any] = {}
        event = {"kind": "user", "id": "e1", "time": 1_764_400_000_000, "type": "LOGIN_ERROR", "ip_address": "10.0.0.1",
                 "error": "user_disabled", "details": {"username": "left.user"}}
        body, headers = signed(event)
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{base}/events", data=body, headers={"X-WMS-Signature": "sha256=00"}) as r:
                out["forged"] = (r.status, (await r.json())["error"])
            async with s.post(f"{base}/events", data=body, headers=headers) as r:
                out["first"] = (r.status, await r.json())
            async with s.post(f"{base}/events", data=body, headers=headers) as r:
                out["again"] = (r.status, (await r.json())["status"])
            bad, bad_headers = signed({"kind": "user", "id": "e2"})
            async with s.post(f"{base}/events", data=bad, headers=bad_headers) as r:
                out["malformed"] = (r.status, (await r.json())["error"])
            big, big_headers = signed({**event, "id": "e3", "details": {"username": "x" * 4000}})
            async with s.post(f"{base}/events", data=big, headers=big_headers) as r:
                out["too_large"] = r.status
            async with s.get(f"{base}/alerts") as r:
                out["no_token"] = r.status
            async with s.get(f"{base}/alerts", headers={"Authorization": "Bearer " + "t" * 24}) as r:
                out["list"] = await r.json()
        await runner.cleanup()
        return out

    out = asyncio.run(scenario())
    assert out["forged"] == (401, "bad_signature")
    assert (out["first"][0] == 202 and out["first"][1]["status"] == "accepted"
            and len(out["first"][1]["alerts_opened"]) == 1)
    assert out["again"] == (202, "duplicate")
    assert out["malformed"] == (400, "bad_event") and out["too_large"] == 413 and out["no_token"] == 401
    [alert] = out["list"]["alerts"]
    assert alert["rule"] == "blocked_account_login" and alert["subject"] == "left.user" and alert["count"] == 1


def test_names_typed_by_outsiders_cannot_drive_chat_markup_or_mail_headers() -> None:
    from alerting.delivery import backoff_ms
    from alerting.notifiers.base import markdown_safe, slack_safe

    typed = from_push({"kind": "user", "id": "e9", "time": 1, "type": "LOGIN_ERROR",
                       "details": {"username": "x\r\nBcc: evil@example.test\u202e[Reset](https://evil) <!channel>"}})
    assert "\n" not in typed.username and "\r" not in typed.username and "\u202e" not in typed.username
    assert "[" not in markdown_safe(typed.username) and "(" not in markdown_safe(typed.username)
    assert "<!channel>" not in slack_safe(typed.username)
    mail = EmailNotifier("mail", SmtpServer("127.0.0.1", 9, security="none"), "a@example.test", ["b@example.test"])
    message = mail.message({**ALERT, "title_zh": f"账号 {typed.username}", "title_en": typed.username})
    assert "Bcc" not in message.keys() and "\n" not in str(message["Subject"])
    assert backoff_ms(5000, 1, 300) == 300_000  # thousands of failures: still the cap, no overflow
