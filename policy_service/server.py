"""HTTP service OPA polls for the policy bundle (OPA's bundle service API, with ETags)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

import aiohttp
from aiohttp import web

from authorizer.authn.identity import AuthenticationError, IssuerUnavailable, JwksCache, TokenVerifier
from authorizer.authz.bundle_signature import SIGNATURE_HEADER
from authorizer.config import OidcSettings
from policy_service.builder import BuildResult, BundleBuilder, tree_revision
from policy_service.gate import GateSettings, gate_report, may_approve, record_approval

log = logging.getLogger(__name__)

BUNDLE_PATH = "/bundles/wms.tar.gz"
#: The same policy compiled to Wasm for the proxy's in-process PDP (signed in a header).
WASM_BUNDLE_PATH = "/bundles/wms.wasm.tar.gz"


class PolicyState:
    """What is served and what was last tried.

    Attributes:
        serving: the last good build (None before the first one).
        rejected: the newest rejected build after ``serving``, or None.
    """

    def __init__(self) -> None:
        self.serving: BuildResult | None = None
        self.rejected: BuildResult | None = None
        self.held: BuildResult | None = None  # a good build the publish gate holds for approval
        self.held_report: dict[str, Any] | None = None
        self.approved_by: dict[str, Any] | None = None  # who let the served revision through the gate
        self.bundle: bytes = b""
        self.wasm_bundle: bytes = b""
        self.last_seen: str = ""

    def hold(self, result: BuildResult, report: dict[str, Any]) -> None:
        """Keep a good build back until an admin approves it (a newer held build replaces it)."""
        if self.held is not None and self.held.wasm_bundle is not None and self.held.bundle is not None:
            self.held.bundle.unlink(missing_ok=True)
            self.held.wasm_bundle.unlink(missing_ok=True)
        self.held, self.held_report, self.rejected = result, report, None
        log.error("policy edit %s is held for approval: its replay changes %s recorded decisions (%s widen)",
                  result.revision, report.get("changed"), report.get("widening"))

    def accept(self, result: BuildResult) -> None:
        """Record a build attempt; a good one replaces what is served (both bundles at once)."""
        if result.ok and result.bundle is not None and result.wasm_bundle is not None:
            self.bundle, self.wasm_bundle = result.bundle.read_bytes(), result.wasm_bundle.read_bytes()
            old = self.serving
            self.serving, self.rejected, self.approved_by = result, None, None
            if self.held is not None and self.held.revision == result.revision:
                self.held, self.held_report = None, None
            if old is not None and old.bundle is not None and old.bundle != result.bundle:
                old.bundle.unlink(missing_ok=True)
                if old.wasm_bundle is not None:
                    old.wasm_bundle.unlink(missing_ok=True)
            log.warning("policy bundle %s is now served", result.revision)
        else:
            self.rejected = result
            log.error("policy edit %s rejected; still serving %s:\n%s", result.revision,
                      self.serving.revision if self.serving else "nothing", result.error)

    def status(self) -> dict[str, Any]:
        """The status document (``GET /status``)."""
        def brief(r: BuildResult | None) -> dict[str, Any] | None:
            return None if r is None else {k: v for k, v in asdict(r).items()
                                           if k not in ("bundle", "wasm_bundle", "wasm_signature")}
        held = None if self.held is None else {**(brief(self.held) or {}), "report": self.held_report}
        status = "no_policy" if not self.serving else "rejected_edit" if self.rejected else \
            "held_for_approval" if self.held else "ok"
        return {"serving": brief(self.serving), "rejected": brief(self.rejected), "held": held,
                "approved_by": self.approved_by, "status": status}


STATE = web.AppKey("state", PolicyState)


def _serve(request: web.Request, wasm: bool) -> web.Response:
    """The served bundle (OPA's, or the Wasm one with its signature header), 304 when the
    client has this revision, 503 before a first good build."""
    state = request.app[STATE]
    if state.serving is None:
        return web.json_response({"error": "no_policy"}, status=503)
    etag = f'"{state.serving.revision}"'
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    headers = {"ETag": etag}
    if wasm and state.serving.wasm_signature:
        headers[SIGNATURE_HEADER] = state.serving.wasm_signature
    return web.Response(body=state.wasm_bundle if wasm else state.bundle, content_type="application/gzip",
                        headers=headers)


async def _bundle(request: web.Request) -> web.StreamResponse:
    return _serve(request, wasm=False)


async def _wasm_bundle(request: web.Request) -> web.StreamResponse:
    return _serve(request, wasm=True)


async def _status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(state.status(), status=200 if state.serving else 503)


async def _decide_edit(state: PolicyState, result: BuildResult, gate: GateSettings | None) -> None:
    """Serve a new build, or hold it when the publish gate's replay says so (a failed build is rejected)."""
    if gate is None or not result.ok or state.serving is None or result.wasm_bundle is None:
        state.accept(result)
        return
    try:
        report = await gate_report(gate, state.wasm_bundle, result.wasm_bundle.read_bytes())
    except Exception as exc:  # a gate that cannot judge holds the edit (fail closed)
        log.exception("the publish gate could not replay %s", result.revision)
        report = {"passes": False, "error": f"{type(exc).__name__}: {exc}"}
    if report.get("passes"):
        state.accept(result)
    else:
        state.hold(result, report)


def _approve_handler(gate: GateSettings) -> Any:
    async def approve(request: web.Request) -> web.Response:
        """Let the held edit named in ``{"revision"}`` go live (an admin's stepped-up bearer token)."""
        state = request.app[STATE]
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return web.json_response({"error": "missing_token"}, status=401)
        try:
            principal = await request.app[VERIFIER].verify(header[7:].strip())
        except (AuthenticationError, IssuerUnavailable) as exc:
            return web.json_response({"error": "invalid_token", "detail": str(exc)[:200]}, status=401)
        if not may_approve(gate, principal):
            return web.json_response({"error": "not_an_approver", "detail": f"needs role {gate.approver_role} and "
                                      f"acr {gate.approver_acr}"}, status=403)
        try:
            body = await request.json()
        except ValueError:
            body = None
        revision = body.get("revision") if isinstance(body, dict) else None
        if state.held is None or revision != state.held.revision:
            return web.json_response({"error": "not_held", "held": state.held.revision if state.held else None},
                                     status=409)
        held, report = state.held, state.held_report or {}
        try:
            decision_id = await record_approval(gate, principal, held.revision, report)
        except Exception as exc:  # not recorded, not published
            log.exception("the approval of %s could not be recorded", held.revision)
            return web.json_response({"error": "audit_unavailable", "detail": type(exc).__name__}, status=503)
        state.accept(held)
        state.approved_by = {"username": principal.username, "decision_id": decision_id}
        return web.json_response({"serving": held.revision, "approved_by": principal.username,
                                  "decision_id": decision_id})

    return approve


def create_app(builder: BundleBuilder, poll_seconds: float = 1.0,
               gate: tuple[GateSettings, OidcSettings] | None = None) -> web.Application:
    """The bundle service: builds once at start (refusing to start without a good bundle),
    then rebuilds whenever the source tree's content changes (checked every ``poll_seconds``).

    Args:
        gate: the publish gate's settings and how approvers' tokens are verified (None: every
            good build goes live).

    Raises:
        RuntimeError: (at startup) the initial policy does not build.
    """
    app = web.Application()
    state = PolicyState()
    app[STATE] = state

    async def watch() -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(poll_seconds)
            try:
                revision = await loop.run_in_executor(None, tree_revision, *builder.sources)
                if revision == state.last_seen:
                    continue
                state.last_seen = revision
                await _decide_edit(state, await loop.run_in_executor(None, builder.build),
                                   gate[0] if gate is not None else None)
            except Exception:
                log.exception("policy watch failed; retrying")

    async def startup(app: web.Application) -> None:
        result = await asyncio.get_running_loop().run_in_executor(None, builder.build)
        if not result.ok:
            raise RuntimeError(f"the policy in {', '.join(map(str, builder.sources))} does not build:\n{result.error}")
        state.last_seen = result.revision
        state.accept(result)
        if gate is not None:
            app[SESSION] = aiohttp.ClientSession()
            oidc = gate[1]
            app[VERIFIER] = TokenVerifier(oidc, JwksCache(app[SESSION], oidc.issuer, oidc.jwks_min_refresh_seconds))
        app[_WATCHER] = asyncio.get_running_loop().create_task(watch())

    async def cleanup(app: web.Application) -> None:
        if _WATCHER in app:
            app[_WATCHER].cancel()
        if SESSION in app:
            await app[SESSION].close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_get(BUNDLE_PATH, _bundle)
    app.router.add_get(WASM_BUNDLE_PATH, _wasm_bundle)
    app.router.add_get("/status", _status)
    if gate is not None:
        app.router.add_post("/approve", _approve_handler(gate[0]))
    return app


_WATCHER = web.AppKey("watcher", asyncio.Task)
SESSION = web.AppKey("session", aiohttp.ClientSession)
VERIFIER = web.AppKey("verifier", TokenVerifier)
