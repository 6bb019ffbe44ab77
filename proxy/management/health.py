"""``GET /_gateway/health``: 200 only when Keycloak's keys, OPA (with its policy bundle) and the WMS answer."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from authorizer.audit.writer import AuditBackpressure, AuditWriter
from authorizer.authn.identity import IssuerUnavailable, JwksCache
from authorizer.authz.inprocess_pdp import InProcessPdp
from authorizer.config import HealthProbe, OpaSettings
from proxy.lifecycle import QUIET, endpoint

_TIMEOUT = aiohttp.ClientTimeout(total=2.0)


async def _probe(session: aiohttp.ClientSession, url: str, expect: tuple[int, ...] = (200,)) -> dict[str, Any]:
    try:
        async with session.get(url, timeout=_TIMEOUT, allow_redirects=False) as resp:
            await resp.read()
            return {"ok": resp.status in expect, "status": resp.status}
    except (TimeoutError, aiohttp.ClientError) as exc:
        return {"ok": False, "error": type(exc).__name__}


async def _keys(jwks: JwksCache) -> dict[str, Any]:
    try:
        keys = await asyncio.wait_for(jwks.fetch(), timeout=3.0)
        return {"ok": len(keys.keys) > 0, "keys": len(keys.keys)}
    except (TimeoutError, IssuerUnavailable) as exc:
        return {"ok": False, "error": str(exc) or type(exc).__name__}


async def _policy(session: aiohttp.ClientSession, url: str | None) -> dict[str, Any] | None:
    """The bundle service's view: the revision served and any rejected edit (informational)."""
    if url is None:
        return None
    try:
        async with session.get(url, timeout=_TIMEOUT) as resp:
            status = await resp.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return {"reachable": False, "error": type(exc).__name__}
    serving = (status.get("serving") or {}).get("revision")
    rejected, held = status.get("rejected"), status.get("held")
    return {"reachable": True, "serving": serving,
            "rejected_edit": None if not rejected else {"revision": rejected.get("revision"),
                                                        "error": str(rejected.get("error", ""))[:2000]},
            "held_edit": None if not held else {"revision": held.get("revision"),
                                                "changed": (held.get("report") or {}).get("changed")}}


async def _active_revision(session: aiohttp.ClientSession, opa_url: str) -> str | None:
    """The revision of the policy bundle OPA enforces now (``data.wms.authz.policy_revision``)."""
    try:
        async with session.get(f"{opa_url}/v1/data/wms/authz/policy_revision", timeout=_TIMEOUT) as resp:
            answer = await resp.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return None
    result = answer.get("result") if isinstance(answer, dict) else None
    return result if isinstance(result, str) else None


def audit_check(writer: AuditWriter) -> dict[str, Any]:
    """The audit writer's state: ``{"ok", "pending", "spooled"}``; not ok when it refuses new records."""
    try:
        writer.check_capacity()
        ok = True
    except AuditBackpressure:
        ok = False
    return {"ok": ok, "pending": writer.pending, "spooled": writer.spooled}


def in_process_check(pdp: InProcessPdp) -> dict[str, Any]:
    """The in-process PDP's state: ``{"ok", "revision", "error"}``; ok once a bundle decides."""
    return {"ok": pdp.revision is not None, "evaluation": "in_process", "revision": pdp.revision,
            "error": pdp.last_error}


def health_handler(session_key: web.AppKey[aiohttp.ClientSession], jwks_key: web.AppKey[JwksCache],
                   opa: OpaSettings, upstream_url: str, wms_probe: HealthProbe,
                   audit: Callable[[Mapping[Any, Any]], AuditWriter | None] | None = None,
                   in_process: Callable[[Mapping[Any, Any]], InProcessPdp | None] | None = None) -> Any:
    """Build the handler; it probes the dependencies concurrently (2-3 s timeouts).

    Answers ``{"status": "ok"|"degraded", "failing": [...], "checks": {"keycloak_keys", "opa", "wms",
    "audit"}, "policy": {"active", "serving", ...}, "warnings": [...], "process": {"pid", "worker"}}``
    (``policy.active``: the bundle revision OPA enforces, as in every audit record; ``serving``:
    what the bundle service offers) with 200 when every
    check passes, else 503 (``worker``: this process's index under ``wmsgate proxy --workers``, or null).
    OPA counts as up only with its policy bundle activated. A rejected policy edit
    is a warning (the last good policy keeps serving), not a failure; so are audit
    records waiting in the spool while the database is down (a full spool fails).
    With ``opa.evaluation: in_process`` the ``pdp`` check is the proxy's own (a bundle loaded),
    ``policy.active`` its revision, and OPA down is a warning (only explain and who-can need it).

    Args:
        upstream_url: the WMS's base URL.
        wms_probe: the path GET on the WMS and the statuses that count as up (``upstream.health``).
        audit: gives the application's audit writer (None: no audit check).
        in_process: gives the application's in-process PDP (None: OPA decides).
    """

    @endpoint(QUIET)  # a probe is recorded only when it fails unexpectedly
    async def handler(request: web.Request) -> web.Response:
        session = request.config_dict[session_key]
        keycloak, opa_check, wms, policy, active = await asyncio.gather(
            _keys(request.config_dict[jwks_key]), _probe(session, f"{opa.url}/health?bundles"),
            _probe(session, f"{upstream_url}{wms_probe.path}", wms_probe.expect_status),
            _policy(session, opa.policy_status_url), _active_revision(session, opa.url))
        checks = {"keycloak_keys": keycloak, "opa": opa_check, "wms": wms}
        warnings = []
        pdp = in_process(request.config_dict) if in_process is not None else None
        if pdp is not None:
            checks["pdp"], active = in_process_check(pdp), pdp.revision
            del checks["opa"]
            if not opa_check["ok"]:
                warnings.append("OPA is down: requests are decided in-process; explain and who-can need OPA")
        policy = {**(policy or {}), "active": active}
        if pdp is not None and pdp.last_error:
            warnings.append(f"the proxy refused the newest policy bundle ({pdp.last_error[:300]}); "
                            f"{pdp.revision or 'nothing'} keeps deciding")
        if pdp is not None and policy.get("serving") and pdp.revision and policy["serving"] != pdp.revision:
            warnings.append(f"the proxy decides with {pdp.revision}, the bundle service serves {policy['serving']}")
        writer = audit(request.config_dict) if audit is not None else None
        if writer is not None:
            checks["audit"] = audit_check(writer)
            if checks["audit"]["spooled"]:
                warnings.append(f"{checks['audit']['spooled']} audit records wait in the spool "
                                "(the audit database is unavailable)")
            if writer.witness is not None and writer.witness.last_error is not None:
                warnings.append(f"the audit witness {writer.witness.witness.describe()} is not updated "
                                f"({writer.witness.last_error[:200]}); checkpoints are kept and copied when it is back")
        failing = [name for name, c in checks.items() if not c["ok"]]
        if policy.get("rejected_edit"):
            warnings.append(f"policy edit {policy['rejected_edit']['revision']} was rejected; "
                            f"still serving {policy['serving']}")
        if policy.get("held_edit"):
            held = policy["held_edit"]
            warnings.append(f"policy edit {held['revision']} is held for approval: its replay changes "
                            f"{held['changed']} recorded decisions (wmsgate policy approve)")
        if opa.policy_status_url and not policy.get("reachable"):
            warnings.append("the policy bundle service is unreachable; OPA keeps its last bundle")
        body = {"status": "ok" if not failing else "degraded", "failing": failing, "checks": checks,
                "policy": policy, "warnings": warnings,
                "process": {"pid": os.getpid(), "worker": os.environ.get("WMSGATE_WORKER")}}
        return web.json_response(body, status=200 if not failing else 503, headers={"Cache-Control": "no-store"})

    return handler
