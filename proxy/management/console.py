"""The admin console under ``/_gateway/ui/`` for people logged in through the browser SSO.

``GET  /_gateway/ui/approvals``                      inbox (to decide) and my requests
``POST /_gateway/ui/approvals/{id}/approve|reject``  decide (step-up when the policy asks for it)
``GET  /_gateway/ui/people[?username=]``             a person's roles, scope and grants (``iam:view``)
``POST /_gateway/ui/people/{username}/offboard``     offboard, after a confirmation (``iam:delete``)
``POST /_gateway/ui/people/{username}/grants/{id}/revoke``  end a temporary grant now (``iam:delete``)
``POST /_gateway/ui/people/{username}/roles|grant``  role change / temporary grant, held for a second admin
``GET  /_gateway/ui/audit?...``                      audit search with CSV export (``audit:view``)

Each page is decided by the policy like any request and audited; forms carry the
session's CSRF token and must come from the gateway's own origin. The work is done
by the same functions as the JSON APIs (approvals, access, audit).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from authorizer.approvals.store import Approval
from authorizer.audit import AuditRecord
from authorizer.authn.identity import Principal
from authorizer.authz.attributes import Resource
from authorizer.authz.pdp import Decision, Reason, parse_decision
from authorizer.authz.routes import Route
from authorizer.iam.access import AccessError, AccessService
from proxy.browser_pages import Text, login_href
from proxy.console_pages import Lang, console_page, csrf_field, esc, lang_of, pretty_body, table
from proxy.explain import Person, explain, who_can
from proxy.gateway import Gateway
from proxy.lifecycle import CONSOLE, QUIET, context_of, endpoint, sub_path
from proxy.management import access as access_api
from proxy.management import approvals as approvals_api
from proxy.management import audit as audit_api
from proxy.pipeline import RequestLine, authenticated, decide_or_refuse, hold_request
from proxy.responses import Refusal
from proxy.sso import CONTEXT, origin_of

log = logging.getLogger(__name__)

UI = "/_gateway/ui"
APPROVALS = f"{UI}/approvals"
PEOPLE = f"{UI}/people"
AUDIT = f"{UI}/audit"
WHY = f"{UI}/why"
WHO_CAN = f"{UI}/who-can"
WHY_SELF = Route("GET", WHY, ("_gateway", "ui", "why"), "portal", "view")
PEOPLE_VIEW = Route("GET", PEOPLE, ("_gateway", "ui", "people"), "iam", "view")
Form = dict[str, str]
Body = Callable[[web.Request, Gateway, AuditRecord, Principal, Form, str], Awaitable[web.Response]]


def console_view(body: Body) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a console handler: session login and the CSRF token on forms (the one audited-request
    path, :mod:`proxy.lifecycle`, answers refusals as pages and records the outcome)."""

    @endpoint(CONSOLE)
    async def handler(request: web.Request) -> web.Response:
        ctx, _ = await authenticated(request)
        assert ctx.principal is not None
        browser_ctx = request.get(CONTEXT)
        if browser_ctx is None or browser_ctx.session is None:
            raise Refusal(401, "session_ended", "控制台需要通过浏览器登录", "the console needs a browser login")
        form: Form = {}
        if request.method == "POST":
            form = {k: str(v) for k, v in (await request.post()).items()}
            if not secrets.compare_digest(form.get("_csrf", ""), browser_ctx.session.csrf):
                raise Refusal(403, "csrf_check_failed", "表单已失效,请刷新页面后重试",
                              "the form expired; reload the page and try again")
        return await body(request, ctx.gw, ctx.record, ctx.principal, form, browser_ctx.session.csrf)

    handler.__doc__ = body.__doc__
    return handler


def _origin(gw: Gateway) -> str | None:
    return gw.sso.origin if gw.sso is not None else None


def identity_provider_origin(gw: Gateway) -> str:
    """The identity provider's origin (for the pages' form-action policy)."""
    return origin_of(gw.sso.rp.settings.issuer) if gw.sso is not None else ""


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
        why = lang.t(Text("审批前需要再次验证身份(动态验证码)。",
                          "Deciding needs a fresh identity check (one-time code)."))
        confirm = lang.t(Text("验证身份", "Confirm identity"))
        note = f'<p class="note">{why} <a href="{esc(href)}">{confirm}</a></p>'
    comment_label = lang.t(Text("意见", "Comment"))
    forms = "".join(
        f'<form class="inline" method="post" action="{APPROVALS}/{approval_id}/{verdict}?back={APPROVALS}">'
        f'{csrf_field(csrf)}<label>{comment_label} <input name="comment" maxlength="2000"></label>'
        f'<button type="submit" name="verdict" value="{verdict}">{esc(lang.plain(label))}</button></form>'
        for verdict, label in (("approve", Text("批准", "Approve")), ("reject", Text("驳回", "Reject"))))
    return note + forms


@console_view
async def approvals_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                         form: Form, csrf: str) -> web.Response:
    """The approvals inbox and the person's own requests."""
    lang = lang_of(request)
    data = await approvals_api.inbox(gw, record, principal)
    parts = []
    done = request.query.get("done")
    if done in ("approve", "reject"):
        text = Text("已批准,申请已执行(结果见下)。", "Approved; the request has run (see below).") \
            if done == "approve" else Text("已驳回。", "Rejected.")
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
                        identity_provider_origin(gw), decision_id=record.decision_id)


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
def _service(gw: Gateway) -> AccessService:
    """The access service, or 503 when access management is not configured."""
    if gw.access is None:
        raise Refusal(503, "access_management_unavailable", "访问管理未配置(keycloak_admin)",
                      "access management is not configured (keycloak_admin)")
    return gw.access


async def _person(gw: Gateway, username: str) -> dict[str, Any]:
    """What the access service knows about ``username`` (404/502 as refusals)."""
    try:
        return await _service(gw).person(username)
    except AccessError as exc:
        raise Refusal(exc.status, exc.code, exc.zh, exc.en) from None


async def _people_decision(gw: Gateway, request: web.Request, principal: Principal, record: AuditRecord,
                           username: str) -> None:
    await decide_or_refuse(context_of(request), PEOPLE_VIEW, Resource(kind="item", id=username))


def _revoke_form(username: str, grant: dict[str, Any], csrf: str, lang: Lang) -> str:
    """End one grant now (narrowing: immediate), with a reason and a confirmation."""
    action = f'{PEOPLE}/{esc(quote(username, safe=""))}/grants/{esc(grant["grant_id"])}/revoke'
    return (f'<form class="inline" method="post" action="{action}">{csrf_field(csrf)}'
            f'<label>{lang.t(Text("原因", "Reason"))} <input name="reason" required maxlength="2000" size="10"></label>'
            f'<label><input type="checkbox" name="confirm" value="yes" required> '
            f'{lang.t(Text("确认立即收回", "Yes, end it now"))}</label> '
            f'<button type="submit">{esc(lang.plain(Text("收回", "Revoke")))}</button></form>')


def _person_card(person: dict[str, Any], lang: Lang, csrf: str | None = None) -> str:
    """Roles, scope and live grants (with a revoke form each when ``csrf`` is given)."""
    scope = "; ".join(f"{dim}: {', '.join(values) or '-'}" for dim, values in person["scope"].items())
    grants = [[esc(g["role"]), esc(", ".join(f"{k}: {','.join(v)}" for k, v in (g["scope"] or {}).items())),
               esc(dt.datetime.fromtimestamp(g["valid_from_s"], dt.UTC).isoformat()),
               esc(dt.datetime.fromtimestamp(g["valid_until_s"], dt.UTC).isoformat()),
               _revoke_form(person["username"], g, csrf, lang) if csrf else ""]
              for g in person["grants"]]
    state = Text("启用", "enabled") if person["enabled"] else Text("已停用", "disabled")
    return (f'<div class="card"><p><strong>{esc(person["username"])}</strong> {esc(person["name"])} · '
            f'{lang.t(state)}</p><p>{lang.t(Text("角色", "Roles"))}: {esc(", ".join(person["roles"]) or "-")}</p>'
            f'<p>{lang.t(Text("数据范围", "Data scope"))}: {esc(scope)}</p>'
            f'<h3>{lang.t(Text("临时授权", "Temporary grants"))}</h3>'
            + table([Text("角色", "Role"), Text("范围", "Scope"), Text("开始 (UTC)", "From (UTC)"),
                     Text("结束 (UTC)", "Until (UTC)"), Text("操作", "Action")], grants, lang) + "</div>")


def _change_forms(person: dict[str, Any], csrf: str, lang: Lang) -> str:
    """Role change and temporary grant forms (both are held for a second admin's approval)."""
    name = esc(quote(person["username"], safe=""))
    back = esc(urlencode({"back": f"{PEOPLE}?{urlencode({'username': person['username']})}"}))
    held = lang.t(Text("提交后需另一位管理员批准,并需再次验证身份。",
                       "Needs another admin's approval and a fresh identity check."))
    scope = person["scope"]
    roles_form = (f'<h3>{lang.t(Text("变更角色", "Change roles"))}</h3><p class="second">{held}</p>'
                  f'<form method="post" action="{PEOPLE}/{name}/roles?{back}">{csrf_field(csrf)}'
                  f'<label>{lang.t(Text("角色(逗号分隔)", "Roles (comma-separated)"))} '
                  f'<input name="roles" value="{esc(", ".join(person["roles"]))}" required></label>'
                  + "".join(f'<label>{dim} <input name="{dim}" value="{esc(", ".join(scope.get(dim, [])))}"></label>'
                            for dim in ("warehouse", "channel", "order_type"))
                  + f' <button type="submit">{esc(lang.plain(Text("提交变更", "Request change")))}</button></form>')
    grant_form = (f'<h3>{lang.t(Text("临时授权", "Temporary grant"))}</h3>'
                  f'<form method="post" action="{PEOPLE}/{name}/grant?{back}">{csrf_field(csrf)}'
                  f'<label>{lang.t(Text("角色", "Role"))} <input name="role" required></label>'
                  f'<label>{lang.t(Text("仓库", "Warehouses"))} <input name="warehouses" required></label>'
                  f'<label>{lang.t(Text("渠道", "Channels"))} <input name="channels" value="*"></label>'
                  f'<label>{lang.t(Text("开始(北京时间)", "From (Beijing time)"))} '
                  f'<input type="datetime-local" name="valid_from" required></label>'
                  f'<label>{lang.t(Text("结束(北京时间)", "Until (Beijing time)"))} '
                  f'<input type="datetime-local" name="valid_until" required></label> '
                  f'<button type="submit">{esc(lang.plain(Text("提交授权", "Request grant")))}</button></form>')
    return roles_form + grant_form


def _offboard_form(username: str, csrf: str, lang: Lang) -> str:
    confirm = lang.t(Text(f"确认立即停用 {username} 并收回全部权限",
                          f"Yes, disable {username} and withdraw all access now"))
    return (f'<h3>{lang.t(Text("离职 / 收回全部权限", "Offboard: withdraw all access"))}</h3>'
            f'<form method="post" action="{PEOPLE}/{esc(quote(username, safe=""))}/offboard">{csrf_field(csrf)}'
            f'<label>{lang.t(Text("原因", "Reason"))} <input name="reason" required maxlength="2000"></label>'
            f'<label><input type="checkbox" name="confirm" value="yes" required> {confirm}'
            f'</label> <button type="submit">{esc(lang.plain(Text("离职处理", "Offboard")))}</button></form>')


@console_view
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
        person = await _person(gw, username)
        if person["enabled"]:
            body += (_person_card(person, lang, csrf) + _change_forms(person, csrf, lang)
                     + _offboard_form(username, csrf, lang))
        else:
            body += _person_card(person, lang)
    return console_page(request, Text("人员与权限", "People"), body, principal.username,
                        identity_provider_origin(gw), decision_id=record.decision_id)


async def _access_change(gw: Gateway, request: web.Request, principal: Principal, record: AuditRecord,
                         route: Route, body: dict[str, Any]) -> Approval | None:
    """An access change decided exactly like the access API's: held for four-eyes approval
    (returns the approval) or carried out at once (returns None; the report is in the record)."""
    record.module, record.verb = route.module, route.verb
    service = _service(gw)
    resource = access_api.resource_for(route.template, body)
    decision, policy_input = await decide_or_refuse(context_of(request), route, resource, body)
    if decision.obligations.approval is not None:
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return await hold_request(context_of(request), policy_input,
                                  RequestLine(route.method, route.template, "", raw, "application/json"))
    report = await access_api.apply_change(service, route.template, body, principal.username)
    record.detail.update({"report": report} if isinstance(report, list) else report.document())
    return None


def _outcome_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal, username: str,
                  approval: Approval | None, done: Text) -> web.Response:
    lang = lang_of(request)
    if approval is not None:
        text = Text(f"已提交审批(审批单 {approval.approval_id}),另一位管理员批准后生效。",
                    f"Sent for approval ({approval.approval_id}); it takes effect once another admin approves.")
    else:
        text = done
    steps = "".join(f"<li>{esc(step)}</li>" for step in (record.detail.get("steps") or []))
    return console_page(request, Text("权限变更", "Access change"),
                        f'<p class="ok" role="status">{lang.t(text)}</p><ul>{steps}</ul>'
                        f'<p><a href="{PEOPLE}?{urlencode({"username": username})}">'
                        f'{lang.t(Text("查看此人", "See this person"))}</a> · <a href="{APPROVALS}">'
                        f'{lang.t(Text("审批", "Approvals"))}</a></p>',
                        principal.username, identity_provider_origin(gw), decision_id=record.decision_id)


def _confirmed_reason(form: Form) -> str:
    """The reason of a narrowing change whose confirmation box was ticked.

    Raises:
        Refusal: 400 when the reason is empty or the box is not ticked.
    """
    if form.get("confirm") != "yes" or not form.get("reason", "").strip():
        raise Refusal(400, "confirmation_missing", "请填写原因并勾选确认", "give a reason and tick the confirmation")
    return form["reason"].strip()


@console_view
async def offboard(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                   form: Form, csrf: str) -> web.Response:
    """Offboard a person (the same decision and change as ``POST /_gateway/access/offboard``)."""
    username = request.match_info["username"]
    body = {"username": username, "reason": _confirmed_reason(form)}
    approval = await _access_change(gw, request, principal, record, access_api.OFFBOARD, body)
    done = Text(f"{username} 已离职处理,全部权限已收回。", f"{username} was offboarded; all access is withdrawn.")
    return _outcome_page(request, gw, record, principal, username, approval, done)


@console_view
async def revoke_grant(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                       form: Form, csrf: str) -> web.Response:
    """End one temporary grant now (``POST /_gateway/access/revoke-grant``'s decision and change)."""
    username = request.match_info["username"]
    body = {"username": username, "grant_id": request.match_info["grant_id"], "reason": _confirmed_reason(form)}
    approval = await _access_change(gw, request, principal, record, access_api.REVOKE_GRANT, body)
    done = Text(f"已收回 {username} 的临时授权,之前签发的令牌已失效。",
                f"{username}'s temporary grant was ended; tokens issued before are refused.")
    return _outcome_page(request, gw, record, principal, username, approval, done)


def _values(text: str) -> list[str]:
    return [v.strip() for v in text.replace("|", ",").split(",") if v.strip()]


@console_view
async def change_roles(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                       form: Form, csrf: str) -> web.Response:
    """Replace a person's roles (and optionally scope): widening, so held for a second admin (``iam:update``)."""
    username = request.match_info["username"]
    roles = _values(form.get("roles", ""))
    if not roles:
        raise Refusal(400, "bad_request_body", "请至少填写一个角色", "give at least one role")
    body: dict[str, Any] = {"username": username, "roles": roles}
    scope = {dim: _values(form.get(dim, "")) for dim in ("warehouse", "channel", "order_type")}
    if any(scope.values()):
        body["scope"] = {dim: values for dim, values in scope.items() if values}
    approval = await _access_change(gw, request, principal, record, access_api.SET_ROLES, body)
    return _outcome_page(request, gw, record, principal, username, approval,
                         Text("角色已更新。", "The roles were changed."))


@console_view
async def grant(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                form: Form, csrf: str) -> web.Response:
    """A temporary grant for a person (a one-row bulk grant: ``iam:create``, held for a second admin)."""
    username = request.match_info["username"]
    row = {"username": username, "display_name": "", "role": form.get("role", "").strip(),
           "warehouses": "|".join(_values(form.get("warehouses", ""))),
           "channels": "|".join(_values(form.get("channels", ""))) or "*",
           "order_types": "*", "valid_from": form.get("valid_from", "").strip(),
           "valid_until": form.get("valid_until", "").strip()}
    approval = await _access_change(gw, request, principal, record, access_api.BULK_GRANT, {"rows": [row]})
    return _outcome_page(request, gw, record, principal, username, approval,
                         Text("临时授权已生效。", "The temporary grant is in effect."))


# -- audit -----------------------------------------------------------------------------------
_AUDIT_FIELDS = (("user", Text("人员", "Person")), ("since", Text("起始", "Since")), ("until", Text("截止", "Until")),
                 ("module", Text("模块", "Module")), ("verb", Text("动作", "Verb")),
                 ("resource_id", Text("资源编号", "Resource id")), ("warehouse", Text("仓库", "Warehouse")),
                 ("channel", Text("渠道", "Channel")), ("decision", Text("结果", "Decision")),
                 ("client_ip", Text("IP", "IP")), ("device_id", Text("设备", "Device")),
                 ("approval_id", Text("审批单", "Approval")), ("role", Text("角色", "Role")))


@console_view
async def audit_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                     form: Form, csrf: str) -> web.Response:
    """Search the audit trail (the filters of the audit API) and export the result as CSV."""
    lang = lang_of(request)
    params = {k: v for k, v in request.query.items() if k in {f for f, _ in _AUDIT_FIELDS} | {"offset"} and v}
    query = audit_api.parse_query({**params, "limit": "100"}, paged=True)
    decision, _ = await decide_or_refuse(context_of(request), audit_api.RECORDS, Resource(kind="list"))
    if decision.obligations.approval is not None:
        raise audit_api.approval_not_supported()
    rows = await gw.audit_store.search(query)
    inputs = "".join(f'<label>{lang.t(text)} <input name="{name}" value="{esc(params.get(name, ""))}" size="14">'
                     f'</label>' for name, text in _AUDIT_FIELDS)
    search = (f'<form method="get" action="{AUDIT}">{inputs} '
              f'<button type="submit">{esc(lang.plain(Text("搜索", "Search")))}</button></form>')
    export = ('/_gateway/audit/export?'
              f'{urlencode({**{k: v for k, v in params.items() if k != "offset"}, "format": "csv"})}')
    cells = [[esc(dt.datetime.fromtimestamp(r["ts_ms"] / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")),
              esc(r["username"]), esc(r["decision"]), esc(r["http_status"]), esc(f"{r['module']}:{r['verb']}"),
              esc(r["resource_id"]), esc(r["warehouse"]), esc(r["reason_code"]), esc(r["client_ip"]),
              f"<code>{esc(r['method'])} {esc(r['path'])}</code>"] for r in rows]
    body = (search + f'<p><a href="{esc(export)}">'
            f'{lang.t(Text("导出 CSV(含校验链头)", "Export CSV (with the chain head)"))}'
            f'</a></p>' + table([Text("时间 (UTC)", "Time (UTC)"), Text("人员", "Person"), Text("结果", "Decision"),
                                 Text("状态", "Status"), Text("模块:动作", "Module:verb"), Text("资源", "Resource"),
                                 Text("仓库", "Warehouse"), Text("原因", "Reason"), Text("IP", "IP"),
                                 Text("请求", "Request")], cells, lang))
    if len(rows) == query.limit:
        more = urlencode({**params, "offset": str(query.offset + query.limit)})
        body += f'<p><a href="{AUDIT}?{esc(more)}">{lang.t(Text("下一页", "Next page"))}</a></p>'
    return console_page(request, Text("审计日志", "Audit trail"), body, principal.username,
                        identity_provider_origin(gw), decision_id=record.decision_id)


# -- why denied / who can ---------------------------------------------------------------------
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


async def _person_for(gw: Gateway, request: web.Request, principal: Principal, record: AuditRecord,
                      username: str) -> Person:
    """The person to explain: oneself (as the current token says), or anyone with ``iam:view``."""
    if username == principal.username:
        await decide_or_refuse(context_of(request), WHY_SELF, Resource(kind="aggregate"))
        record.resource_id = username
        return Person(principal.user_id, principal.username, principal.roles, principal.scope, True)
    await _people_decision(gw, request, principal, record, username)
    who = await _person(gw, username)
    return Person(who["user_id"], who["username"], tuple(who["roles"]),
                  {dim: tuple(v) for dim, v in who["scope"].items()}, who["enabled"])


def _explanation(doc: dict[str, Any], lang: Lang, own: bool) -> str:
    """The explain document as a table of steps. For one's own denied requests the resource's
    attributes and a 404's reasons stay hidden, as the proxy hides them (existence must not leak)."""
    req = doc["request"]
    steps = [[lang.t(Text("请求", "Request")), f"<code>{esc(req['method'])} {esc(req['target'])}</code> · "
              f"{esc(req['user'])}"]]
    if doc.get("refused_at") == "hygiene":
        h = doc["hygiene"]
        steps.append([lang.t(Text("请求检查", "Request check")), lang.t(Text(h["zh"], h["en"]))])
    elif doc.get("refused_at") == "route":
        steps.append([lang.t(Text("路由", "Route")), lang.t(Text("不在路由表中,默认拒绝",
                                                               "not in the route map: denied by default"))])
    elif doc.get("refused_at") == "attributes":
        steps.append([lang.t(Text("资源属性", "Resource attributes")), esc(doc["attributes_error"])])
    else:
        route, resource, subject = doc["route"], doc["resource"], doc["input"]["subject"]
        decision = parse_decision(doc["decision"])
        verdict = Text("允许", "allowed") if decision.allow else Text(f"拒绝 ({decision.status})",
                                                                    f"denied ({decision.status})")
        hidden = own and not decision.allow
        attrs = "" if hidden else "; ".join(f"{k}: {', '.join(v)}" for k, v in resource["attributes"].items())
        if own and decision.status == 404:
            decision = Decision(False, 404, (Reason("not_found", "资源不存在或不在您的数据范围内",
                                                    "the resource does not exist or lies outside your data scope"),),
                                decision.obligations, decision.policy_revision)
        scope = "; ".join(f"{k}: {', '.join(v) or '-'}" for k, v in subject["scope"].items())
        reasons = "".join(f"<li>{lang.t(Text(r.zh, r.en))} <code>{esc(r.code)}</code></li>"
                          for r in decision.reasons)
        steps += [[lang.t(Text("路由", "Route")), f"<code>{esc(route['template'])}</code> → "
                   f"<code>{esc(route['module'])}:{esc(route['verb'])}</code> ({esc(route['kind'])})"],
                  [lang.t(Text("资源", "Resource")), f"{esc(resource['id'] or '')} {esc(attrs)}" if
                   (resource["id"] or attrs) else lang.t(Text("列表:按数据范围筛选",
                                                              "a list: narrowed to the data scope"))],
                  [lang.t(Text("角色与范围", "Roles and scope")), f"{esc(', '.join(subject['roles']))}; {esc(scope)}"],
                  [lang.t(Text("决定", "Decision")), f"<strong>{lang.t(verdict)}</strong><ul>{reasons}</ul>"
                   f"<span class='second'>policy {esc(decision.policy_revision)}</span>"]]
    return table([Text("步骤", "Step"), Text("结果", "Result")], steps, lang)


@console_view
async def why_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                   form: Form, csrf: str) -> web.Response:
    """Why would a request be allowed or denied (for oneself, or anyone with ``iam:view``);
    ``?decision_id=`` explains a past decision again under today's policy."""
    lang = lang_of(request)
    q = request.query
    username, method, path = q.get("user", "").strip(), q.get("method", "GET").upper(), q.get("path", "").strip()
    looked_up = None
    if q.get("decision_id"):
        looked_up = await gw.audit_store.record(q["decision_id"])
        if looked_up is None:  # a decision of a moment ago may still wait in the writer's batch
            await gw.audit.flush()
            looked_up = await gw.audit_store.record(q["decision_id"])
    if looked_up is not None and looked_up["user_id"] != principal.user_id:
        await _people_decision(gw, request, principal, record, looked_up["username"] or "*")  # someone else's
    if looked_up is not None and not path:
        username = username or looked_up["username"]
        method = looked_up["method"]
        path = looked_up["path"] + (f"?{looked_up['query']}" if looked_up["query"] else "")
    username = username or principal.username
    person = await _person_for(gw, request, principal, record, username)
    record.resource_id = username
    options = "".join(f'<option{" selected" if m == method else ""}>{m}</option>' for m in _METHODS)
    body = (f'<form method="get" action="{WHY}"><label>{lang.t(Text("人员", "Person"))} '
            f'<input name="user" value="{esc(username)}"></label><label>{lang.t(Text("方法", "Method"))} '
            f'<select name="method">{options}</select></label><label>{lang.t(Text("路径", "Path"))} '
            f'<input name="path" value="{esc(path)}" size="48" required></label> '
            f'<button type="submit">{esc(lang.plain(Text("解释", "Explain")))}</button></form>')
    if path and method in _METHODS:
        doc = await explain(gw.config, person, method, path, None)
        body += _explanation(doc, lang, own=person.user_id == principal.user_id)
    record.decision, record.reason_code = "allow", "allowed"
    return console_page(request, Text("为何被拒绝?", "Why denied?"), body, principal.username,
                        identity_provider_origin(gw), decision_id=record.decision_id)


@console_view
async def who_can_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                       form: Form, csrf: str) -> web.Response:
    """Who may do ``module:verb`` (optionally in one warehouse / channel): roles and people (``iam:view``)."""
    lang = lang_of(request)
    q = request.query
    module, verb = q.get("module", "").strip(), q.get("verb", "").strip()
    filters = {dim: q[dim].strip() for dim in ("warehouse", "channel") if q.get(dim, "").strip()}
    await _people_decision(gw, request, principal, record, "*")
    fields = "".join(f'<label>{lang.t(text)} <input name="{name}" value="{esc(q.get(name, ""))}" size="12"></label>'
                     for name, text in (("module", Text("模块", "Module")), ("verb", Text("动作", "Verb")),
                                        ("warehouse", Text("仓库", "Warehouse")), ("channel", Text("渠道", "Channel"))))
    body = (f'<form method="get" action="{WHO_CAN}">{fields} '
            f'<button type="submit">{esc(lang.plain(Text("查询", "Look up")))}</button></form>')
    if module and verb:
        try:
            people = [Person(p["user_id"], p["username"], tuple(p["roles"]),
                             {d: tuple(v) for d, v in p["scope"].items()}, p["enabled"])
                      for p in await _service(gw).directory()]
        except AccessError as exc:
            raise Refusal(exc.status, exc.code, exc.zh, exc.en) from None
        doc = await who_can(gw.config, people, module, verb, filters)
        rows = [[esc(u["username"]), esc(", ".join(u["roles"])),
                 esc("; ".join(f"{k}: {', '.join(v) or '-'}" for k, v in u["scope"].items()))] for u in doc["users"]]
        body += (f'<p>{lang.t(Text("拥有此权限的角色", "Roles with this permission"))}: '
                 f'{esc(", ".join(doc["roles"]) or "-")}</p>'
                 + table([Text("人员", "Person"), Text("角色", "Roles"), Text("数据范围", "Data scope")], rows, lang))
    return console_page(request, Text("谁可以?", "Who can?"), body, principal.username, identity_provider_origin(gw),
                        decision_id=record.decision_id)


@endpoint(QUIET)
async def home(request: web.Request) -> web.Response:
    """``/_gateway/ui/`` opens the approvals inbox."""
    return web.Response(status=302, headers={"Location": APPROVALS, "Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    """Register the console (only with SSO: it needs browser sessions)."""
    app.router.add_get(sub_path(UI), home)
    app.router.add_get(sub_path(f"{UI}/"), home)
    app.router.add_get(sub_path(APPROVALS), approvals_page)
    app.router.add_post(sub_path(APPROVALS + "/{approval_id}/approve"), console_view(_decide("approve")))
    app.router.add_post(sub_path(APPROVALS + "/{approval_id}/reject"), console_view(_decide("reject")))
    app.router.add_get(sub_path(PEOPLE), people_page)
    app.router.add_post(sub_path(PEOPLE + "/{username}/offboard"), offboard)
    app.router.add_post(sub_path(PEOPLE + "/{username}/grants/{grant_id}/revoke"), revoke_grant)
    app.router.add_post(sub_path(PEOPLE + "/{username}/roles"), change_roles)
    app.router.add_post(sub_path(PEOPLE + "/{username}/grant"), grant)
    app.router.add_get(sub_path(AUDIT), audit_page)
    app.router.add_get(sub_path(WHY), why_page)
    app.router.add_get(sub_path(WHO_CAN), who_can_page)
