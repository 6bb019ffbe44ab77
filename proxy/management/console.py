"""The admin console under ``/_gateway/ui/`` for people logged in through the browser SSO.

``GET  /_gateway/ui/approvals``                      inbox (to decide) and my requests
``POST /_gateway/ui/approvals/{id}/approve|reject``  decide (step-up when the policy asks for it)
``GET  /_gateway/ui/people[?username=]``             a person's roles, scope and grants (``iam:view``)
``POST /_gateway/ui/people/{username}/offboard``     offboard, after a confirmation (``iam:delete``)
``GET  /_gateway/ui/audit?...``                      audit search with CSV export (``audit:view``)

Each page is decided by the policy like any request and audited; forms carry the
session's CSRF token and must come from the gateway's own origin. The work is done
by the same functions as the JSON APIs (approvals, access, audit).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode

from aiohttp import web

from authorizer.access import AccessError
from authorizer.attributes import Resource
from authorizer.audit import AuditRecord, AuditUnavailable
from authorizer.identity import Principal
from authorizer.routes import Route
from proxy import browser, responses
from proxy.browser_pages import Text, login_href
from proxy.console_pages import Lang, console_page, csrf_field, esc, lang_of, pretty_body, table
from proxy.management import access as access_api
from proxy.management import approvals as approvals_api
from proxy.management import audit as audit_api
from proxy.pipeline import GATEWAY, Gateway, authenticate, decide_or_refuse, new_record
from proxy.redirects import safe_return_to
from proxy.responses import Refusal
from proxy.sso import CONTEXT, origin_of

UI = "/_gateway/ui"
APPROVALS = f"{UI}/approvals"
PEOPLE = f"{UI}/people"
AUDIT = f"{UI}/audit"
PEOPLE_VIEW = Route("GET", PEOPLE, ("_gateway", "ui", "people"), "iam", "view")
Form = dict[str, str]
Body = Callable[[web.Request, Gateway, AuditRecord, Principal, Form, str], Awaitable[web.Response]]


def _console(body: Body) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a console handler: session login, CSRF token on forms, audit, friendly refusals."""

    async def handler(request: web.Request) -> web.Response:
        gw = request.app[GATEWAY]
        record = new_record(request, gw, path_limit=300)
        try:
            principal = await authenticate(request, gw)
            record.user_id, record.username = principal.user_id, principal.username
            record.roles = ",".join(principal.roles)
            ctx = request.get(CONTEXT)
            if ctx is None or ctx.session is None:
                raise Refusal(401, "session_ended", "控制台需要通过浏览器登录", "the console needs a browser login")
            form: Form = {}
            if request.method == "POST":
                form = {k: str(v) for k, v in (await request.post()).items()}
                if not secrets.compare_digest(form.get("_csrf", ""), ctx.session.csrf):
                    raise Refusal(403, "csrf_check_failed", "表单已失效,请刷新页面后重试",
                                  "the form expired; reload the page and try again")
            response = await body(request, gw, record, principal, form, ctx.session.csrf)
        except Refusal as refusal:
            reason = refusal.audit_reason
            record.reason_code = reason.code if reason else refusal.code
            record.reason_zh, record.reason_en = (reason.zh, reason.en) if reason else (refusal.zh, refusal.en)
            response = _refusal(request, gw, refusal, record)
        record.http_status = response.status
        if record.approval_id is None and record.module != "iam":
            gw.audit.submit(record)
            return response
        try:  # approval decisions and access changes are durable before they are answered
            await gw.audit.commit(record)
        except AuditUnavailable:
            return browser.refusal_answer(request, responses.audit_unavailable(), record.decision_id,
                                          record.username or None, _origin(gw))
        return response

    handler.__doc__ = body.__doc__
    return handler


def _origin(gw: Gateway) -> str | None:
    return gw.sso.origin if gw.sso is not None else None


def _idp(gw: Gateway) -> str:
    """The identity provider's origin (for the pages' form-action policy)."""
    return origin_of(gw.sso.rp.settings.issuer) if gw.sso is not None else ""


def _refusal(request: web.Request, gw: Gateway, refusal: Refusal, record: AuditRecord) -> web.Response:
    """A form post that needs a step-up goes to the login with ``acr_values`` and back to its page."""
    if refusal.step_up and request.method == "POST":
        back = safe_return_to(request.query.get("back") or APPROVALS)
        acr = str(refusal.step_up.get("acr_values", ""))
        max_age = refusal.step_up.get("max_age")
        return web.Response(status=303, headers={
            "Location": login_href(back, acr, int(max_age) if str(max_age).isdigit() else None),
            "Cache-Control": "no-store", "X-Decision-Id": record.decision_id})
    return browser.refusal_answer(request, refusal, record.decision_id, record.username or None, _origin(gw))


def _when(iso_text: str | None) -> str:
    """An ISO UTC time shown in the warehouse's time zone (Asia/Shanghai, UTC+8)."""
    if not iso_text:
        return ""
    at = dt.datetime.fromisoformat(str(iso_text).replace("Z", "+00:00"))
    return esc(at.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S"))


# -- approvals -------------------------------------------------------------------------------
def _request_cell(doc: dict[str, Any]) -> str:
    req = doc["request"]
    query = f"?{req['query']}" if req.get("query") else ""
    body = pretty_body(req.get("body"))
    return (f"<code>{esc(req['method'])} {esc(req['path'])}{esc(query)}</code>"
            + (f"<pre>{body}</pre>" if body else ""))


def _decide_forms(doc: dict[str, Any], csrf: str, lang: Lang) -> str:
    approval_id = esc(doc["approval_id"])
    step_up = doc.get("step_up_needed")
    note = ""
    if step_up:
        href = login_href(APPROVALS, str(step_up.get("acr_values", "")), step_up.get("max_age"))
        why = lang.t(Text("审批前需要再次验证身份(动态验证码)。", "Deciding needs a fresh identity check (one-time code)."))
        confirm = lang.t(Text("验证身份", "Confirm identity"))
        note = f'<p class="note">{why} <a href="{esc(href)}">{confirm}</a></p>'
    comment_label = lang.t(Text("意见", "Comment"))
    forms = "".join(
        f'<form class="inline" method="post" action="{APPROVALS}/{approval_id}/{verdict}?back={APPROVALS}">'
        f'{csrf_field(csrf)}<label>{comment_label} <input name="comment" maxlength="2000"></label>'
        f'<button type="submit" name="verdict" value="{verdict}">{esc(lang.plain(label))}</button></form>'
        for verdict, label in (("approve", Text("批准", "Approve")), ("reject", Text("驳回", "Reject"))))
    return note + forms


@_console
async def approvals_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                         form: Form, csrf: str) -> web.Response:
    """The approvals inbox and the person's own requests."""
    lang = lang_of(request)
    data = await approvals_api.inbox(gw, record, principal)
    parts = []
    done = request.query.get("done")
    if done in ("approve", "reject"):
        text = Text("已批准,申请已执行(结果见下)。", "Approved; the request has run (see below).") if done == "approve" \
            else Text("已驳回。", "Rejected.")
        parts.append(f'<p class="ok" role="status">{lang.t(text)}</p>')
    parts.append(f"<h2>{lang.t(Text('待我审批', 'Waiting for my decision'))}</h2>")
    if not data["to_decide"]:
        parts.append(f"<p>{lang.t(Text('没有待审批的申请。', 'Nothing waits for your decision.'))}</p>")
    for doc in data["to_decide"]:
        parts.append(
            f'<div class="card" id="approval-{esc(doc["approval_id"])}">'
            f'<p><strong>{esc(doc["operation"])}</strong> · {esc(doc["requester"]["username"])} · '
            f'{esc(doc["resource_id"])}</p>{_request_cell(doc)}'
            f'<p class="second">{lang.t(Text("提交", "Asked"))} {_when(doc["created_at"])} · '
            f'{lang.t(Text("过期", "Expires"))} {_when(doc["expires_at"])}</p>{_decide_forms(doc, csrf, lang)}</div>')
    parts.append(f"<h2>{lang.t(Text('我的申请', 'My requests'))}</h2>")
    rows = [[esc(d["operation"]), _request_cell(d), esc(d["status"]), _when(d["created_at"]),
             esc(", ".join(f"{x['by']}: {x['decision']}" for x in d["decisions"])),
             esc((d.get("result") or {}).get("status", ""))] for d in data["requested"]]
    parts.append(table([Text("操作", "Operation"), Text("请求", "Request"), Text("状态", "Status"),
                        Text("提交时间", "Asked at"), Text("审批", "Decisions"), Text("WMS 结果", "WMS result")],
                       rows, lang))
    return console_page(request, Text("审批", "Approvals"), "".join(parts), principal.username,
                        _idp(gw), decision_id=record.decision_id)


def _decide(verdict: str) -> Body:
    async def decide(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                     form: Form, csrf: str) -> web.Response:
        comment = form.get("comment", "")[:approvals_api.MAX_COMMENT]
        await approvals_api.decide(gw, request.match_info["approval_id"], record, principal, verdict, comment)
        return web.Response(status=303, headers={"Location": f"{APPROVALS}?{urlencode({'done': verdict})}",
                                                 "Cache-Control": "no-store", "X-Decision-Id": record.decision_id})

    decide.__doc__ = f"{verdict.capitalize()} an approval from the console."
    return decide


# -- people ----------------------------------------------------------------------------------
async def _people_decision(gw: Gateway, request: web.Request, principal: Principal, record: AuditRecord,
                           username: str) -> None:
    record.module, record.verb, record.resource_id = "iam", "view", username
    await decide_or_refuse(gw.pdp, principal, PEOPLE_VIEW, None, Resource(kind="item", id=username), request, record)


def _person_card(person: dict[str, Any], lang: Lang) -> str:
    scope = "; ".join(f"{dim}: {', '.join(values) or '-'}" for dim, values in person["scope"].items())
    grants = [[esc(g["role"]), esc(", ".join(f"{k}: {','.join(v)}" for k, v in (g["scope"] or {}).items())),
               esc(dt.datetime.fromtimestamp(g["valid_from_s"], dt.timezone.utc).isoformat()),
               esc(dt.datetime.fromtimestamp(g["valid_until_s"], dt.timezone.utc).isoformat())]
              for g in person["grants"]]
    state = Text("启用", "enabled") if person["enabled"] else Text("已停用", "disabled")
    return (f'<div class="card"><p><strong>{esc(person["username"])}</strong> {esc(person["name"])} · '
            f'{lang.t(state)}</p><p>{lang.t(Text("角色", "Roles"))}: {esc(", ".join(person["roles"]) or "-")}</p>'
            f'<p>{lang.t(Text("数据范围", "Data scope"))}: {esc(scope)}</p>'
            f'<h3>{lang.t(Text("临时授权", "Temporary grants"))}</h3>'
            + table([Text("角色", "Role"), Text("范围", "Scope"), Text("开始 (UTC)", "From (UTC)"),
                     Text("结束 (UTC)", "Until (UTC)")], grants, lang) + "</div>")


def _offboard_form(username: str, csrf: str, lang: Lang) -> str:
    confirm = lang.t(Text(f"确认立即停用 {username} 并收回全部权限",
                          f"Yes, disable {username} and withdraw all access now"))
    return (f'<h3>{lang.t(Text("离职 / 收回全部权限", "Offboard: withdraw all access"))}</h3>'
            f'<form method="post" action="{PEOPLE}/{esc(username)}/offboard">{csrf_field(csrf)}'
            f'<label>{lang.t(Text("原因", "Reason"))} <input name="reason" required maxlength="2000"></label>'
            f'<label><input type="checkbox" name="confirm" value="yes" required> {confirm}'
            f'</label> <button type="submit">{esc(lang.plain(Text("离职处理", "Offboard")))}</button></form>')


@_console
async def people_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                      form: Form, csrf: str) -> web.Response:
    """Look up a person: roles, data scope, active temporary grants; offboard them."""
    lang = lang_of(request)
    username = request.query.get("username", "").strip()[:255]
    await _people_decision(gw, request, principal, record, username or "*")
    search = (f'<form method="get" action="{PEOPLE}"><label>{lang.t(Text("用户名", "Username"))} '
              f'<input name="username" value="{esc(username)}" required></label> '
              f'<button type="submit">{esc(lang.plain(Text("查询", "Look up")))}</button></form>')
    body = search
    if username:
        if gw.access is None:
            raise Refusal(503, "access_management_unavailable", "访问管理未配置(keycloak_admin)",
                          "access management is not configured (keycloak_admin)")
        try:
            person = await gw.access.person(username)
        except AccessError as exc:
            raise Refusal(exc.status, exc.code, exc.zh, exc.en) from None
        body += _person_card(person, lang) + (_offboard_form(username, csrf, lang) if person["enabled"] else "")
    return console_page(request, Text("人员与权限", "People"), body, principal.username,
                        _idp(gw), decision_id=record.decision_id)


@_console
async def offboard(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                   form: Form, csrf: str) -> web.Response:
    """Offboard a person (the same decision and change as ``POST /_gateway/access/offboard``)."""
    lang = lang_of(request)
    username = request.match_info["username"]
    if form.get("confirm") != "yes" or not form.get("reason", "").strip():
        raise Refusal(400, "confirmation_missing", "请填写原因并勾选确认", "give a reason and tick the confirmation")
    body = {"username": username, "reason": form["reason"].strip()}
    route = access_api.OFFBOARD
    record.module, record.verb, record.resource_id = route.module, route.verb, username
    if gw.access is None:
        raise Refusal(503, "access_management_unavailable", "访问管理未配置(keycloak_admin)",
                      "access management is not configured (keycloak_admin)")
    resource = access_api.resource_for(route.template, body)
    await decide_or_refuse(gw.pdp, principal, route, body, resource, request, record)
    report = await access_api.apply_change(gw.access, route.template, body, principal.username)
    record.detail = {"report": report} if isinstance(report, list) else report.document()
    steps = "".join(f"<li>{esc(step)}</li>" for step in (record.detail.get("steps") or []))
    text = Text(f"{username} 已离职处理,全部权限已收回。", f"{username} was offboarded; all access is withdrawn.")
    return console_page(request, Text("离职处理完成", "Offboarded"),
                        f'<p class="ok" role="status">{lang.t(text)}</p><ul>{steps}</ul>'
                        f'<p><a href="{PEOPLE}?{urlencode({"username": username})}">'
                        f'{lang.t(Text("查看此人", "See this person"))}</a></p>',
                        principal.username, _idp(gw), decision_id=record.decision_id)


# -- audit -----------------------------------------------------------------------------------
_AUDIT_FIELDS = (("user", Text("人员", "Person")), ("since", Text("起始", "Since")), ("until", Text("截止", "Until")),
                 ("module", Text("模块", "Module")), ("verb", Text("动作", "Verb")),
                 ("resource_id", Text("资源编号", "Resource id")), ("warehouse", Text("仓库", "Warehouse")),
                 ("channel", Text("渠道", "Channel")), ("decision", Text("结果", "Decision")),
                 ("client_ip", Text("IP", "IP")), ("device_id", Text("设备", "Device")),
                 ("approval_id", Text("审批单", "Approval")), ("role", Text("角色", "Role")))


@_console
async def audit_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                     form: Form, csrf: str) -> web.Response:
    """Search the audit trail (the filters of the audit API) and export the result as CSV."""
    lang = lang_of(request)
    params = {k: v for k, v in request.query.items() if k in {f for f, _ in _AUDIT_FIELDS} | {"offset"} and v}
    query = audit_api.parse_query({**params, "limit": "100"}, paged=True)
    record.module, record.verb = audit_api.RECORDS.module, audit_api.RECORDS.verb
    await decide_or_refuse(gw.pdp, principal, audit_api.RECORDS, None, Resource(kind="list"), request, record)
    rows = await gw.audit_store.search(query)
    inputs = "".join(f'<label>{lang.t(text)} <input name="{name}" value="{esc(params.get(name, ""))}" size="14">'
                     f'</label>' for name, text in _AUDIT_FIELDS)
    search = (f'<form method="get" action="{AUDIT}">{inputs} '
              f'<button type="submit">{esc(lang.plain(Text("搜索", "Search")))}</button></form>')
    export = f'/_gateway/audit/export?{urlencode({**{k: v for k, v in params.items() if k != "offset"}, "format": "csv"})}'
    cells = [[esc(dt.datetime.fromtimestamp(r["ts_ms"] / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")),
              esc(r["username"]), esc(r["decision"]), esc(r["http_status"]), esc(f"{r['module']}:{r['verb']}"),
              esc(r["resource_id"]), esc(r["warehouse"]), esc(r["reason_code"]), esc(r["client_ip"]),
              f"<code>{esc(r['method'])} {esc(r['path'])}</code>"] for r in rows]
    body = (search + f'<p><a href="{esc(export)}">{lang.t(Text("导出 CSV(含校验链头)", "Export CSV (with the chain head)"))}'
            f'</a></p>' + table([Text("时间 (UTC)", "Time (UTC)"), Text("人员", "Person"), Text("结果", "Decision"),
                                 Text("状态", "Status"), Text("模块:动作", "Module:verb"), Text("资源", "Resource"),
                                 Text("仓库", "Warehouse"), Text("原因", "Reason"), Text("IP", "IP"),
                                 Text("请求", "Request")], cells, lang))
    if len(rows) == query.limit:
        more = urlencode({**params, "offset": str(query.offset + query.limit)})
        body += f'<p><a href="{AUDIT}?{esc(more)}">{lang.t(Text("下一页", "Next page"))}</a></p>'
    return console_page(request, Text("审计日志", "Audit trail"), body, principal.username,
                        _idp(gw), decision_id=record.decision_id)


async def home(request: web.Request) -> web.Response:
    """``/_gateway/ui/`` opens the approvals inbox."""
    return web.Response(status=302, headers={"Location": APPROVALS, "Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    """Register the console (only with SSO: it needs browser sessions)."""
    app.router.add_get(UI, home)
    app.router.add_get(f"{UI}/", home)
    app.router.add_get(APPROVALS, approvals_page)
    app.router.add_post(APPROVALS + "/{approval_id}/approve", _console(_decide("approve")))
    app.router.add_post(APPROVALS + "/{approval_id}/reject", _console(_decide("reject")))
    app.router.add_get(PEOPLE, people_page)
    app.router.add_post(PEOPLE + "/{username}/offboard", offboard)
    app.router.add_get(AUDIT, audit_page)
