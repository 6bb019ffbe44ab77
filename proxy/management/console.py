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

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from authorizer.approvals.store import Approval
from authorizer.audit import AuditRecord
from authorizer.authn.identity import Principal
from authorizer.authz.attributes import Resource
from authorizer.authz.pdp import Decision, Reason, parse_decision
from authorizer.authz.routes import Route
from authorizer.iam.access import AccessError, AccessService
from authorizer.messages import TEXTS, Text
from proxy.browser_pages import login_href
from proxy.console_pages import console_page
from proxy.explain import Person, explain, who_can
from proxy.gateway import Gateway
from proxy.lifecycle import CONSOLE, QUIET, context_of, endpoint, sub_path
from proxy.management import access as access_api
from proxy.management import approvals as approvals_api
from proxy.management import audit as audit_api
from proxy.pipeline import RequestLine, authenticated, decide_or_refuse, hold_request
from proxy.responses import caught, refusal
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
            raise refusal("session_ended")
        form: Form = {}
        if request.method == "POST":
            form = {k: str(v) for k, v in (await request.post()).items()}
            if not secrets.compare_digest(form.get("_csrf", ""), browser_ctx.session.csrf):
                raise refusal("csrf_check_failed")
        return await body(request, ctx.gw, ctx.record, ctx.principal, form, browser_ctx.session.csrf)

    handler.__doc__ = body.__doc__
    return handler


def identity_provider_origin(gw: Gateway) -> str:
    """The identity provider's origin (for the pages' form-action policy)."""
    return origin_of(gw.sso.rp.settings.issuer) if gw.sso is not None else ""


# -- approvals -------------------------------------------------------------------------------
def _step_up_href(doc: dict[str, Any]) -> str | None:
    """Where to confirm identity before deciding (RFC 9470 step-up), when the policy asks for it."""
    step_up = doc.get("step_up_needed")
    if not step_up:
        return None
    return login_href(APPROVALS, str(step_up.get("acr_values", "")), step_up.get("max_age"))


@console_view
async def approvals_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                         form: Form, csrf: str) -> web.Response:
    """The approvals inbox and the person's own requests."""
    data = await approvals_api.inbox(gw, record, principal)
    to_decide = [{**doc, "step_up_href": _step_up_href(doc)} for doc in data["to_decide"]]
    return console_page(request, TEXTS["title_approvals"], "approvals",
                        {"done": request.query.get("done"), "to_decide": to_decide,
                         "requested": data["requested"], "csrf": csrf},
                        principal.username, identity_provider_origin(gw), decision_id=record.decision_id)


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
        raise refusal("access_management_unavailable")
    return gw.access


async def _person(gw: Gateway, username: str) -> dict[str, Any]:
    """What the access service knows about ``username`` (404/502 as refusals)."""
    try:
        return await _service(gw).person(username)
    except AccessError as exc:
        raise caught(exc) from None


async def _people_decision(request: web.Request, username: str) -> None:
    """May the caller look at ``username`` (``iam:view`` on the person)?"""
    await decide_or_refuse(context_of(request), PEOPLE_VIEW, Resource(kind="item", id=username))


@console_view
async def people_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                      form: Form, csrf: str) -> web.Response:
    """Look up a person: roles, data scope, active temporary grants; change, grant, offboard."""
    username = request.query.get("username", "").strip()[:255]
    await _people_decision(request, username or "*")
    person = await _person(gw, username) if username else None
    return console_page(request, TEXTS["title_people"], "people",
                        {"username": username, "person": person, "csrf": csrf},
                        principal.username, identity_provider_origin(gw), decision_id=record.decision_id)


async def _access_change(gw: Gateway, request: web.Request, principal: Principal, record: AuditRecord,
                         route: Route, body: dict[str, Any]) -> Approval | None:
    """An access change decided exactly like the access API's: held for four-eyes approval
    (returns the approval) or carried out at once (returns None; the report is in the record)."""
    context_of(request).classify(route)  # the record is an access change's even when it stops here
    service = _service(gw)
    resource = access_api.resource_for(route.template, body)
    decision, policy_input = await decide_or_refuse(context_of(request), route, resource, body)
    await access_api.check_separation(service, route.template, body)
    if decision.obligations.approval is not None:
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return await hold_request(context_of(request), policy_input,
                                  RequestLine(route.method, route.template, "", raw, "application/json"))
    report = await access_api.apply_change(service, route.template, body, principal.username)
    record.detail.update({"report": report} if isinstance(report, list) else report.document())
    return None


def _outcome_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal, username: str,
                  approval: Approval | None, done: Text) -> web.Response:
    if approval is not None:
        done = TEXTS["change_held"].format(approval_id=approval.approval_id)
    return console_page(request, TEXTS["title_access_change"], "outcome",
                        {"done": done, "steps": record.detail.get("steps") or [], "username": username},
                        principal.username, identity_provider_origin(gw), decision_id=record.decision_id)


def _confirmed_reason(form: Form) -> str:
    """The reason of a narrowing change whose confirmation box was ticked.

    Raises:
        Refusal: 400 when the reason is empty or the box is not ticked.
    """
    if form.get("confirm") != "yes" or not form.get("reason", "").strip():
        raise refusal("confirmation_missing")
    return form["reason"].strip()


@console_view
async def offboard(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                   form: Form, csrf: str) -> web.Response:
    """Offboard a person (the same decision and change as ``POST /_gateway/access/offboard``)."""
    username = request.match_info["username"]
    body = {"username": username, "reason": _confirmed_reason(form)}
    approval = await _access_change(gw, request, principal, record, access_api.OFFBOARD, body)
    done = TEXTS["change_offboarded"].format(username=username)
    return _outcome_page(request, gw, record, principal, username, approval, done)


@console_view
async def revoke_grant(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                       form: Form, csrf: str) -> web.Response:
    """End one temporary grant now (``POST /_gateway/access/revoke-grant``'s decision and change)."""
    username = request.match_info["username"]
    body = {"username": username, "grant_id": request.match_info["grant_id"], "reason": _confirmed_reason(form)}
    approval = await _access_change(gw, request, principal, record, access_api.REVOKE_GRANT, body)
    done = TEXTS["change_grant_ended"].format(username=username)
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
        raise refusal("roles_missing")
    body: dict[str, Any] = {"username": username, "roles": roles}
    scope = {dim: _values(form.get(dim, "")) for dim in ("warehouse", "channel", "order_type")}
    if any(scope.values()):
        body["scope"] = {dim: values for dim, values in scope.items() if values}
    approval = await _access_change(gw, request, principal, record, access_api.SET_ROLES, body)
    return _outcome_page(request, gw, record, principal, username, approval,
                         TEXTS["change_roles_set"])


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
                         TEXTS["change_grant_made"])


# -- audit -----------------------------------------------------------------------------------
_AUDIT_FIELDS = tuple((name, TEXTS[f"field_{name}"]) for name in (
    "user", "since", "until", "module", "verb", "resource_id", "warehouse", "channel", "decision", "client_ip",
    "device_id", "approval_id", "role"))


@console_view
async def audit_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                     form: Form, csrf: str) -> web.Response:
    """Search the audit trail (the filters of the audit API) and export the result as CSV."""
    params = {k: v for k, v in request.query.items() if k in {f for f, _ in _AUDIT_FIELDS} | {"offset"} and v}
    query = audit_api.parse_query({**params, "limit": "100"}, paged=True)
    decision, _ = await decide_or_refuse(context_of(request), audit_api.RECORDS, Resource(kind="list"))
    if decision.obligations.approval is not None:
        raise audit_api.approval_not_supported()
    rows = await gw.audit_store.search(query)
    export = ('/_gateway/audit/export?'
              f'{urlencode({**{k: v for k, v in params.items() if k != "offset"}, "format": "csv"})}')
    more = urlencode({**params, "offset": str(query.offset + query.limit)}) if len(rows) == query.limit else ""
    return console_page(request, TEXTS["title_audit"], "audit",
                        {"fields": _AUDIT_FIELDS, "params": params, "export": export, "rows": rows, "more": more},
                        principal.username, identity_provider_origin(gw), decision_id=record.decision_id)


# -- why denied / who can ---------------------------------------------------------------------
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


async def _person_for(gw: Gateway, request: web.Request, principal: Principal, record: AuditRecord,
                      username: str) -> Person:
    """The person to explain: oneself (as the current token says), or anyone with ``iam:view``."""
    if username == principal.username:
        await decide_or_refuse(context_of(request), WHY_SELF, Resource(kind="aggregate"))
        record.resource_id = username
        return Person(principal.user_id, principal.username, principal.roles, principal.scope, True)
    await _people_decision(request, username)
    who = await _person(gw, username)
    return Person(who["user_id"], who["username"], tuple(who["roles"]),
                  {dim: tuple(v) for dim, v in who["scope"].items()}, who["enabled"])


def _explanation(doc: dict[str, Any], own: bool) -> dict[str, Any]:
    """The explain document as the why page shows it. For one's own denied requests the resource's
    attributes and a 404's reasons stay hidden, as the proxy hides them (existence must not leak)."""
    req = doc["request"]
    shown: dict[str, Any] = {"method": req["method"], "target": req["target"], "user": req["user"],
                             "refused_at": doc.get("refused_at")}
    if doc.get("refused_at") == "hygiene":
        shown["hygiene"] = Text(doc["hygiene"]["zh"], doc["hygiene"]["en"])
        return shown
    if doc.get("refused_at") == "route":
        return shown
    if doc.get("refused_at") == "attributes":
        shown["attributes_error"] = doc["attributes_error"]
        return shown
    route, resource, subject = doc["route"], doc["resource"], doc["input"]["subject"]
    decision = parse_decision(doc["decision"])
    verdict = TEXTS["verdict_allowed"] if decision.allow else TEXTS["verdict_denied"].format(status=decision.status)
    hidden = own and not decision.allow
    attrs = "" if hidden else "; ".join(f"{k}: {', '.join(v)}" for k, v in resource["attributes"].items())
    if own and decision.status == 404:
        decision = Decision(False, 404, (Reason("not_found", TEXTS["why_hidden"].zh, TEXTS["why_hidden"].en),),
                            decision.obligations, decision.policy_revision)
    shown.update({
        "template": route["template"], "module": route["module"], "verb": route["verb"], "route_kind": route["kind"],
        "resource": f"{resource['id'] or ''} {attrs}" if (resource["id"] or attrs) else None,
        "roles": ", ".join(subject["roles"]),
        "scope": "; ".join(f"{k}: {', '.join(v) or '-'}" for k, v in subject["scope"].items()),
        "verdict": verdict, "reasons": list(decision.reasons), "revision": decision.policy_revision})
    return shown


@console_view
async def why_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                   form: Form, csrf: str) -> web.Response:
    """Why would a request be allowed or denied (for oneself, or anyone with ``iam:view``);
    ``?decision_id=`` explains a past decision again under today's policy."""
    q = request.query
    username, method, path = q.get("user", "").strip(), q.get("method", "GET").upper(), q.get("path", "").strip()
    looked_up = None
    if q.get("decision_id"):
        looked_up = await gw.audit_store.record(q["decision_id"])
        if looked_up is None:  # a decision of a moment ago may still wait in the writer's batch
            await gw.audit.flush()
            looked_up = await gw.audit_store.record(q["decision_id"])
    if looked_up is not None and looked_up["user_id"] != principal.user_id:
        await _people_decision(request, looked_up["username"] or "*")  # someone else's
    if looked_up is not None and not path:
        username = username or looked_up["username"]
        method = looked_up["method"]
        path = looked_up["path"] + (f"?{looked_up['query']}" if looked_up["query"] else "")
    username = username or principal.username
    person = await _person_for(gw, request, principal, record, username)
    record.resource_id = username
    explanation = None
    if path and method in _METHODS:
        doc = await explain(gw.config, person, method, path, None)
        explanation = _explanation(doc, own=person.user_id == principal.user_id)
    record.decision, record.reason_code = "allow", "allowed"
    return console_page(request, TEXTS["title_why"], "why",
                        {"username": username, "methods": _METHODS, "method": method, "path": path, "e": explanation},
                        principal.username, identity_provider_origin(gw), decision_id=record.decision_id)


@console_view
async def who_can_page(request: web.Request, gw: Gateway, record: AuditRecord, principal: Principal,
                       form: Form, csrf: str) -> web.Response:
    """Who may do ``module:verb`` (optionally in one warehouse / channel): roles and people (``iam:view``)."""
    q = request.query
    module, verb = q.get("module", "").strip(), q.get("verb", "").strip()
    filters = {dim: q[dim].strip() for dim in ("warehouse", "channel") if q.get(dim, "").strip()}
    await _people_decision(request, "*")
    doc = None
    if module and verb:
        try:
            people = [Person(p["user_id"], p["username"], tuple(p["roles"]),
                             {d: tuple(v) for d, v in p["scope"].items()}, p["enabled"])
                      for p in await _service(gw).directory()]
        except AccessError as exc:
            raise caught(exc) from None
        doc = await who_can(gw.config, people, module, verb, filters)
    fields = tuple((name, TEXTS[f"field_{name}"]) for name in ("module", "verb", "warehouse", "channel"))
    return console_page(request, TEXTS["title_who_can"], "who_can",
                        {"fields": fields, "query": dict(q), "doc": doc},
                        principal.username, identity_provider_origin(gw), decision_id=record.decision_id)


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
