"""HTTP service OPA polls for the policy bundle (OPA's bundle service API, with ETags)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

from aiohttp import web

from authorizer.authz.bundle_signature import SIGNATURE_HEADER
from policy_service.builder import BuildResult, BundleBuilder, tree_revision

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
        self.bundle: bytes = b""
        self.wasm_bundle: bytes = b""
        self.last_seen: str = ""

    def accept(self, result: BuildResult) -> None:
        """Record a build attempt; a good one replaces what is served (both bundles at once)."""
        if result.ok and result.bundle is not None and result.wasm_bundle is not None:
            self.bundle, self.wasm_bundle = result.bundle.read_bytes(), result.wasm_bundle.read_bytes()
            old = self.serving
            self.serving, self.rejected = result, None
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
        return {"serving": brief(self.serving), "rejected": brief(self.rejected),
                "status": "ok" if self.serving and not self.rejected else
                ("rejected_edit" if self.serving else "no_policy")}


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


def create_app(builder: BundleBuilder, poll_seconds: float = 1.0) -> web.Application:
    """The bundle service: builds once at start (refusing to start without a good bundle),
    then rebuilds whenever the source tree's content changes (checked every ``poll_seconds``).

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
                state.accept(await loop.run_in_executor(None, builder.build))
            except Exception:
                log.exception("policy watch failed; retrying")

    async def startup(app: web.Application) -> None:
        result = await asyncio.get_running_loop().run_in_executor(None, builder.build)
        if not result.ok:
            raise RuntimeError(f"the policy in {', '.join(map(str, builder.sources))} does not build:\n{result.error}")
        state.last_seen = result.revision
        state.accept(result)
        app[_WATCHER] = asyncio.get_running_loop().create_task(watch())

    async def cleanup(app: web.Application) -> None:
        if _WATCHER in app:
            app[_WATCHER].cancel()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_get(BUNDLE_PATH, _bundle)
    app.router.add_get(WASM_BUNDLE_PATH, _wasm_bundle)
    app.router.add_get("/status", _status)
    return app


_WATCHER = web.AppKey("watcher", asyncio.Task)
