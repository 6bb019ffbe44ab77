"""The in-process PDP: the bundle service's Wasm bundle (built by the pinned OPA from rego/base +
rego/demo), its signature, and what happens when a bundle is refused. Decisions against the OPA
sidecar are compared in tests/integration/test_pdp_differential.py."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import wasmtime
from aiohttp import web
from aiohttp.test_utils import TestServer
from joserfc.jwk import RSAKey

from authorizer.authz.bundle_signature import SIGNATURE_HEADER, BundleRejected, sign_bundle
from authorizer.authz.inprocess_pdp import InProcessPdp, InProcessSettings, load_bundle
from authorizer.authz.opa_wasm import WasmPolicy, WasmPolicyError
from authorizer.authz.pdp import PdpUnavailable
from policy_service.builder import BuildResult, BundleBuilder
from wmsgate.devstack import generate_rsa_key
from wmsgate.tools import REPO, locate_tools

ENTRYPOINT = "wms/authz/decision"


def picker_input(warehouse: str, module: str = "orders") -> dict[str, Any]:
    """picker.hf viewing one order in ``warehouse``."""
    return {
        "subject": {"id": "u-picker", "username": "picker.hf", "roles": ["picker"],
                    "scope": {"warehouse": ["HF"], "channel": ["*"], "order_type": ["*"]}, "grants": []},
        "action": {"module": module, "verb": "view", "also": []},
        "resource": {"kind": "item", "id": "SO1", "found": True,
                     "attributes": {"warehouse": [warehouse], "channel": ["taobao"], "order_type": ["b2c"]}},
        "request": {"method": "GET", "route": "/api/orders/{order_no}", "client_ip": "127.0.0.1",
                    "time_ms": int(time.time() * 1000)},
    }


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The signing key pair and another key pair (not trusted)."""
    root = tmp_path_factory.mktemp("keys")
    generate_rsa_key(root / "sign.pem", root / "sign.pub.pem")
    generate_rsa_key(root / "other.pem", root / "other.pub.pem")
    return {"private": root / "sign.pem", "public": root / "sign.pub.pem", "other": root / "other.pem",
            "other_public": root / "other.pub.pem"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> BuildResult:
    """rego/base + rego/demo built by the bundle service's builder (OPA's and the Wasm bundle)."""
    builder = BundleBuilder((REPO / "rego" / "base", REPO / "rego" / "demo"), locate_tools().opa,
                            tmp_path_factory.mktemp("bundles"), run_tests=False, signing_key=keys["private"])
    result = builder.build()
    assert result.ok, result.error
    assert result.wasm_bundle is not None and result.wasm_signature
    return result


def _key(path: Path) -> RSAKey:
    return RSAKey.import_key(path.read_bytes())


def test_the_signed_wasm_bundle_loads_and_decides_as_the_policy_says(built: BuildResult,
                                                                     keys: dict[str, Path]) -> None:
    assert built.wasm_bundle is not None
    loaded = load_bundle(built.wasm_bundle.read_bytes(), built.wasm_signature, _key(keys["public"]), ENTRYPOINT,
                         wasmtime.Engine())
    assert loaded.revision == built.revision
    inside = json.loads(loaded.policy.evaluate(ENTRYPOINT, json.dumps(picker_input("HF")).encode()))
    assert inside[0]["result"]["allow"] is True
    assert inside[0]["result"]["policy_revision"] == built.revision
    assert "amount" in inside[0]["result"]["obligations"]["mask"]
    outside = json.loads(loaded.policy.evaluate(ENTRYPOINT, json.dumps(picker_input("SH")).encode()))[0]["result"]
    assert outside["allow"] is False and outside["reasons"][0]["code"] == "out_of_scope"
    assert outside["reasons"][0]["en"] == "the resource's warehouse is outside your data scope [HF]"


def _repack(tarball: bytes, change: dict[str, bytes]) -> bytes:
    """The bundle with members replaced (a tampered copy)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as src, tarfile.open(fileobj=out, mode="w:gz") as dst:
        for info in src:
            data = src.extractfile(info).read() if info.isfile() else b""  # type: ignore[union-attr]
            data = change.get(info.name.lstrip("/"), data)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("case", ["tampered", "other_key", "unsigned", "garbage_signature", "other_revision"])
def test_a_bundle_that_does_not_verify_is_refused(built: BuildResult, keys: dict[str, Path], case: str) -> None:
    assert built.wasm_bundle is not None
    tarball, signature = built.wasm_bundle.read_bytes(), built.wasm_signature
    if case == "tampered":  # data edited after signing: every picker may now delete orders
        data = json.loads(_member(tarball, "data.json"))
        data["wms"]["roles"]["picker"]["permissions"].append("orders:delete")
        tarball = _repack(tarball, {"data.json": json.dumps(data).encode()})
    elif case == "other_key":
        signature = sign_bundle(tarball, built.revision, _key(keys["other"]), "attacker")
    elif case == "unsigned":
        signature = ""
    elif case == "garbage_signature":
        signature = "not.a.jws"
    else:  # a valid signature naming another revision than the manifest's
        signature = sign_bundle(tarball, "sha256:0000000000000000", _key(keys["private"]), "wms-policy")
    with pytest.raises(BundleRejected):
        load_bundle(tarball, signature, _key(keys["public"]), ENTRYPOINT, wasmtime.Engine())


def _member(tarball: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for info in tar:
            if info.name.lstrip("/") == name:
                handle = tar.extractfile(info)
                assert handle is not None
                return handle.read()
    raise KeyError(name)


def test_a_policy_needing_a_builtin_the_host_lacks_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text('package p\n\nx := time.now_ns()\n', encoding="utf-8")
    out = tmp_path / "b.tar.gz"
    import subprocess

    subprocess.run([str(locate_tools().opa), "build", "-t", "wasm", "-e", "p/x", "-o", str(out), str(tmp_path)],
                   check=True, capture_output=True, timeout=60)
    with pytest.raises(WasmPolicyError, match=r"time\.now_ns"):
        WasmPolicy(_member(out.read_bytes(), "policy.wasm"), {})


class BundleServer:
    """Serves one Wasm bundle like the bundle service (ETag, signature header); tests swap it."""

    def __init__(self, tarball: bytes, signature: str, revision: str) -> None:
        self.tarball, self.signature, self.revision, self.status = tarball, signature, revision, 200

    async def handle(self, request: web.Request) -> web.Response:
        if self.status != 200:
            return web.Response(status=self.status)
        etag = f'"{self.revision}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304)
        return web.Response(body=self.tarball, headers={"ETag": etag, SIGNATURE_HEADER: self.signature})


def test_a_refused_bundle_leaves_the_last_good_one_deciding(built: BuildResult, keys: dict[str, Path]) -> None:
    assert built.wasm_bundle is not None
    good = built.wasm_bundle.read_bytes()

    async def scenario() -> None:
        served = BundleServer(good, "", built.revision)  # unsigned first: nothing decides yet
        app = web.Application()
        app.router.add_get("/bundles/wms.wasm.tar.gz", served.handle)
        async with TestServer(app) as server, aiohttp.ClientSession() as session:
            pdp = InProcessPdp(session, InProcessSettings(str(server.make_url("/bundles/wms.wasm.tar.gz")),
                                                          keys["public"], ENTRYPOINT, poll_seconds=60))
            await pdp.start(first_wait_seconds=0.5)
            with pytest.raises(PdpUnavailable):  # fail closed before a first verified bundle
                await pdp.decide(picker_input("HF"))
            assert pdp.revision is None and pdp.last_error is not None and "no X-Bundle-Signature" in pdp.last_error
            served.signature, served.revision = built.wasm_signature, built.revision + "-signed"
            assert await pdp.refresh()
            assert (await pdp.decide(picker_input("HF"))).allow
            assert not (await pdp.decide(picker_input("SH"))).allow
            served.tarball = _repack(good, {"data.json": b'{"wms": {}}'})  # a tampered next revision
            served.revision = "tampered"
            assert not await pdp.refresh()
            assert pdp.revision == built.revision and "digest" in (pdp.last_error or "")
            assert (await pdp.decide(picker_input("HF"))).allow  # the last good bundle still decides
            served.status = 503
            assert not await pdp.refresh()
            assert (await pdp.decide(picker_input("HF"))).allow
            await pdp.close()

    asyncio.run(scenario())


def test_a_bundle_that_arrives_in_many_pieces_is_read_whole(built: BuildResult, keys: dict[str, Path]) -> None:
    assert built.wasm_bundle is not None
    tarball = built.wasm_bundle.read_bytes()
    assert len(tarball) > 64 * 1024  # more than one read's worth

    async def dribble(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"ETag": '"r"', SIGNATURE_HEADER: built.wasm_signature})
        await response.prepare(request)
        for start in range(0, len(tarball), 4096):
            await response.write(tarball[start:start + 4096])
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/b", dribble)
        async with TestServer(app) as server, aiohttp.ClientSession() as session:
            pdp = InProcessPdp(session, InProcessSettings(str(server.make_url("/b")), keys["public"], ENTRYPOINT))
            assert await pdp.refresh(), pdp.last_error
            assert pdp.revision == built.revision

    asyncio.run(scenario())


TRAPPING_MODULE = """(module (import "env" "memory" (memory 2))
 (global (export "opa_wasm_abi_version") i32 (i32.const 1))
 (global (export "opa_wasm_abi_minor_version") i32 (i32.const 2))
 (func (export "opa_eval") (param i32 i32 i32 i32 i32 i32 i32) (result i32) unreachable)
 (func (export "opa_malloc") (param i32) (result i32) unreachable)
 (func (export "opa_json_parse") (param i32 i32) (result i32) unreachable)
 (func (export "opa_json_dump") (param i32) (result i32) unreachable)
 (func (export "entrypoints") (result i32) unreachable)
 (func (export "builtins") (result i32) unreachable)
 (func (export "opa_heap_ptr_get") (result i32) unreachable))"""


def _tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_a_module_that_traps_while_loading_is_refused_and_polling_goes_on(keys: dict[str, Path]) -> None:
    revision = "sha256:deadbeefdeadbeef"
    tarball = _tarball({"/.manifest": json.dumps({"revision": revision}).encode(), "/data.json": b"{}",
                        "/policy.wasm": wasmtime.wat2wasm(TRAPPING_MODULE)})
    signature = sign_bundle(tarball, revision, _key(keys["private"]), "wms-policy")
    with pytest.raises(BundleRejected, match="cannot be used"):
        load_bundle(tarball, signature, _key(keys["public"]), ENTRYPOINT, wasmtime.Engine())

    async def scenario() -> None:
        served = BundleServer(tarball, signature, revision)
        app = web.Application()
        app.router.add_get("/b", served.handle)
        async with TestServer(app) as server, aiohttp.ClientSession() as session:
            pdp = InProcessPdp(session, InProcessSettings(str(server.make_url("/b")), keys["public"], ENTRYPOINT,
                                                          poll_seconds=0.02))
            await pdp.start(first_wait_seconds=0.1)
            await asyncio.sleep(0.2)
            assert pdp._task is not None and not pdp._task.done()  # still polling
            assert pdp.revision is None and "cannot be used" in (pdp.last_error or "")
            await pdp.close()

    asyncio.run(scenario())


def test_an_older_signed_bundle_is_not_taken_back(built: BuildResult, keys: dict[str, Path]) -> None:
    """A replayed earlier policy (validly signed, but signed before the one deciding) is refused."""
    assert built.wasm_bundle is not None
    tarball = built.wasm_bundle.read_bytes()
    now = int(time.time())

    async def scenario() -> None:
        served = BundleServer(tarball, sign_bundle(tarball, built.revision, _key(keys["private"]), "k", now), "new")
        app = web.Application()
        app.router.add_get("/b", served.handle)
        async with TestServer(app) as server, aiohttp.ClientSession() as session:
            pdp = InProcessPdp(session, InProcessSettings(str(server.make_url("/b")), keys["public"], ENTRYPOINT))
            assert await pdp.refresh()
            served.signature = sign_bundle(tarball, built.revision, _key(keys["private"]), "k", now - 3600)
            served.revision = "replayed"
            assert not await pdp.refresh()
            assert "signed before" in (pdp.last_error or "")
            served.signature = sign_bundle(tarball, built.revision, _key(keys["private"]), "k", now + 1)
            served.revision = "newer"
            assert await pdp.refresh()

    asyncio.run(scenario())


def test_a_bundle_whose_rules_read_the_clock_elsewhere_is_not_cached(tmp_path: Path, keys: dict[str, Path]) -> None:
    """An office-hours rule in the rules: the decision cache's proof does not cover it, so that
    bundle's decisions are evaluated every time (a 10:00 allow must not answer at 23:30)."""
    base = tmp_path / "base"
    shutil.copytree(REPO / "rego" / "base", base)
    authz = base / "wms" / "authz" / "authz.rego"
    authz.write_text(authz.read_text(encoding="utf-8").replace(
        "allow if {\n\tpermitted\n", "allow if {\n\toffice_hours\n\tpermitted\n", 1)
        + "\noffice_hours if {\n\thour := (input.request.time_ms / 3600000) % 24\n\thour >= 8\n\thour < 20\n}\n",
        encoding="utf-8")
    result = BundleBuilder((base, REPO / "rego" / "demo"), locate_tools().opa, tmp_path / "out", run_tests=False,
                           signing_key=keys["private"]).build()
    assert result.ok and result.wasm_bundle is not None, result.error
    loaded = load_bundle(result.wasm_bundle.read_bytes(), result.wasm_signature, _key(keys["public"]), ENTRYPOINT,
                         wasmtime.Engine())
    assert not loaded.cacheable

    async def scenario() -> None:
        served = BundleServer(result.wasm_bundle.read_bytes(), result.wasm_signature, result.revision)  # type: ignore[union-attr]
        app = web.Application()
        app.router.add_get("/b", served.handle)
        async with TestServer(app) as server, aiohttp.ClientSession() as session:
            pdp = InProcessPdp(session, InProcessSettings(str(server.make_url("/b")), keys["public"], ENTRYPOINT))
            assert await pdp.refresh()
            day = picker_input("HF")
            day["request"]["time_ms"] = 10 * 3_600_000
            night = copy.deepcopy(day)
            night["request"]["time_ms"] = 23 * 3_600_000 + 1_800_000
            assert (await pdp.decide(day)).allow
            assert not (await pdp.decide(night)).allow
            assert pdp.cache.hits == 0 and len(pdp.cache) == 0

    asyncio.run(scenario())


def test_the_bundle_service_rejects_a_policy_the_proxy_cannot_run(tmp_path: Path, keys: dict[str, Path]) -> None:
    base = tmp_path / "base"
    shutil.copytree(REPO / "rego" / "base", base)
    (base / "wms" / "authz" / "clock.rego").write_text(
        "package wms.authz\n\n# METADATA\n# title: Now\n# description: x\nnow_ns := time.now_ns()\n", encoding="utf-8")
    authz = base / "wms" / "authz" / "authz.rego"
    authz.write_text(authz.read_text(encoding="utf-8").replace("allow if {\n\tpermitted\n",
                                                               "allow if {\n\tnow_ns > 0\n\tpermitted\n", 1),
                     encoding="utf-8")
    result = BundleBuilder((base, REPO / "rego" / "demo"), locate_tools().opa, tmp_path / "out", run_tests=False,
                           signing_key=keys["private"]).build()
    assert not result.ok and "time.now_ns" in result.error and "in-process" in result.error
