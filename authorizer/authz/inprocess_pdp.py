"""The PDP in this process: the policy bundle compiled to Wasm, evaluated without a network hop.

The bundle service builds the same policy layers OPA serves into a second bundle
(``opa build -t wasm``: ``policy.wasm``, ``data.json``, ``.manifest``) and signs it.
This PDP polls that bundle (``If-None-Match``), verifies the signature, loads it and
swaps it in whole; a bundle that does not verify or load is refused and the last good
one keeps deciding, as OPA does. Until a first bundle is loaded every decision is
:class:`~authorizer.authz.pdp.PdpUnavailable` (the proxy answers 503: fail closed).

Signature: see :mod:`authorizer.authz.bundle_signature`.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import wasmtime
from joserfc.jwk import RSAKey

from authorizer.authz.bundle_signature import SIGNATURE_HEADER, BundleRejected, verify_bundle
from authorizer.authz.decision_cache import PROVEN_READERS, DecisionCache, cache_key, clock_readers, proof_holds
from authorizer.authz.opa_wasm import WasmPolicy, WasmPolicyError
from authorizer.authz.pdp import Decision, DecisionPoint, PdpUnavailable, parse_decision

log = logging.getLogger(__name__)

#: The bundle's name under ``data.system.bundles`` (the policy reads its revision there, as in OPA).
BUNDLE_NAME = "wms"
#: Largest bundle accepted, bytes (compressed and each unpacked member).
MAX_BUNDLE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class InProcessSettings:
    """Where the compiled bundle comes from and how it is trusted.

    Attributes:
        bundle_url: the bundle service's Wasm bundle, e.g. ``http://127.0.0.1:8182/bundles/wms.wasm.tar.gz``.
        public_key_file: the RSA public key (PEM) the bundle must be signed with.
        entrypoint: the decision's entrypoint, e.g. ``wms/authz/decision``.
        poll_seconds: how often the bundle service is asked for a new revision.
        timeout_seconds: limit for one fetch.
        cache_size: clock-free decisions kept (:mod:`authorizer.authz.decision_cache`); 0: none.
    """

    bundle_url: str
    public_key_file: Path
    entrypoint: str
    poll_seconds: float = 1.0
    timeout_seconds: float = 10.0
    cache_size: int = 4096


@dataclass(frozen=True)
class LoadedBundle:
    """The bundle deciding now.

    Attributes:
        revision: the manifest's revision (``sha256:...`` of the policy tree).
        policy: the instantiated module with the bundle's data.
        loaded_at: when it was loaded, seconds since the epoch (UTC).
        signed_at: when it was signed, seconds since the epoch (UTC).
        cacheable: its rules read the time and the address only where the decision cache's
            proof says (:func:`~authorizer.authz.decision_cache.proof_holds`).
    """

    revision: str
    policy: WasmPolicy
    loaded_at: float
    signed_at: int = 0
    cacheable: bool = True


@dataclass(frozen=True)
class BundleMembers:
    """What a Wasm bundle holds.

    Attributes:
        manifest: its ``.manifest``.
        wasm: ``policy.wasm``.
        data: ``data.json``.
        sources: its Rego files (path -> text), as the compiler read them.
    """

    manifest: dict[str, Any]
    wasm: bytes
    data: dict[str, Any]
    sources: dict[str, str]


def read_bundle(tarball: bytes) -> BundleMembers:
    """The members of a Wasm bundle.

    Raises:
        BundleRejected: not a gzip'd tar, a member missing or too large, or bad JSON or text.
    """
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
            for info in tar:
                name = info.name.lstrip("/")
                if not info.isfile() or (name not in (".manifest", "policy.wasm", "data.json")
                                         and not name.endswith(".rego")):
                    continue
                if info.size > MAX_BUNDLE_BYTES:
                    raise BundleRejected(f"bundle member {name} is too large ({info.size} bytes)")
                handle = tar.extractfile(info)
                if handle is not None:
                    members[name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleRejected(f"the bundle is not a readable tar.gz: {exc}") from None
    missing = [n for n in (".manifest", "policy.wasm", "data.json") if n not in members]
    if missing:
        raise BundleRejected(f"the bundle lacks {', '.join(missing)} (was it built with opa build -t wasm?)")
    try:
        manifest = json.loads(members[".manifest"])
        data = json.loads(members["data.json"])
        sources = {n: b.decode("utf-8") for n, b in members.items() if n.endswith(".rego")}
    except ValueError as exc:
        raise BundleRejected(f"the bundle's manifest, data or rules cannot be read: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(data, dict):
        raise BundleRejected("the bundle's manifest and data must be JSON objects")
    return BundleMembers(manifest, members["policy.wasm"], data, sources)


def instantiate(bundle: BundleMembers, engine: wasmtime.Engine | None = None) -> WasmPolicy:
    """The bundle's module instantiated with its data (and ``data.system.bundles`` as OPA
    would have it: the policy reads its revision from there).

    Raises:
        BundleRejected: the module cannot be instantiated (a trap, a missing export, an
            unsupported host built-in).
    """
    data = {**bundle.data, "system": {"bundles": {BUNDLE_NAME: {"manifest": bundle.manifest}}}}
    try:
        return WasmPolicy(bundle.wasm, data, engine)
    except WasmPolicyError as exc:
        raise BundleRejected(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a trap, a missing export...: this module is not usable
        raise BundleRejected(f"policy.wasm cannot be used: {exc!r}") from None


def load_bundle(tarball: bytes, signature: str | None, key: RSAKey, entrypoint: str,
                engine: wasmtime.Engine) -> LoadedBundle:
    """Verify and instantiate a signed Wasm bundle.

    Raises:
        BundleRejected: see :func:`~authorizer.authz.bundle_signature.verify_bundle` and
            :func:`read_bundle`; a revision other than the signed one; no ``entrypoint``; a module
            this process cannot run (whatever fails while instantiating it).
    """
    signed = verify_bundle(tarball, signature, key)
    bundle = read_bundle(tarball)
    if bundle.manifest.get("revision") != signed.revision:
        raise BundleRejected(f"the manifest's revision {bundle.manifest.get('revision')!r} is not the signed "
                             f"{signed.revision!r}")
    policy = instantiate(bundle, engine)
    if entrypoint not in policy.entrypoints:
        raise BundleRejected(f"the bundle has no entrypoint {entrypoint} (it has {', '.join(policy.entrypoints)})")
    cacheable = proof_holds(bundle.sources)
    if not cacheable:
        log.warning("policy bundle %s: a rule reads the time or the client address where the decision "
                    "cache's proof does not cover it (%s); decisions of this bundle are not cached",
                    signed.revision, sorted(clock_readers(bundle.sources) - PROVEN_READERS)[:3])
    return LoadedBundle(signed.revision, policy, time.time(), signed.issued_at, cacheable)


def evaluate_decision(policy: WasmPolicy, entrypoint: str, policy_input: dict[str, Any]) -> tuple[Decision, Any]:
    """Evaluate ``entrypoint`` of ``policy`` for ``policy_input``.

    Returns:
        The decision (:func:`~authorizer.authz.pdp.parse_decision`: anything unexpected is a
        deny) and the document's ``high_risk`` as the policy wrote it.

    Raises:
        WasmPolicyError: the evaluation failed (a trap, an abort, a built-in error).
    """
    try:
        encoded = orjson.dumps(policy_input)
    except TypeError:  # an integer beyond 64 bits (orjson's limit): the standard library's encoder
        encoded = json.dumps(policy_input, ensure_ascii=False).encode("utf-8")
    raw = policy.evaluate(entrypoint, encoded)
    results = json.loads(raw)  # the standard library's: OPA may answer integers beyond 64 bits
    result = results[0].get("result") if isinstance(results, list) and results else None
    return parse_decision(result), result.get("high_risk") if isinstance(result, dict) else None


@dataclass
class Comparison:
    """In-process decisions checked against the OPA sidecar (``opa.compare_with_sidecar``).

    Attributes:
        compared: decisions both PDPs made on the same bundle revision.
        mismatched: of those, decisions that differed (each logged with its input).
        skipped: decisions not compared: OPA could not answer, or was on another revision
            (a bundle switch in progress).
    """

    compared: int = 0
    mismatched: int = 0
    skipped: int = 0


class InProcessPdp:
    """Decides with the signed Wasm bundle, in this process (see the module's docstring).

    Args:
        session: the app's shared aiohttp session (bundle fetches).
        settings: where the bundle is and the key it must be signed with.
        reference: a PDP every decision is also asked of and compared with (the OPA sidecar,
            for a differential check before switching modes); its answer is never used, only
            counted in :attr:`comparison` and logged when it differs.

    Raises:
        OSError, ValueError: (constructor) the public key file cannot be read or is not an RSA key.
    """

    def __init__(self, session: aiohttp.ClientSession, settings: InProcessSettings,
                 reference: DecisionPoint | None = None) -> None:
        self._session = session
        self._settings = settings
        self._reference = reference
        self.comparison = Comparison()
        #: Decisions that cannot change with the clock, by bundle revision and input.
        self.cache = DecisionCache(settings.cache_size)
        self._key = RSAKey.import_key(settings.public_key_file.read_bytes())
        self._engine = wasmtime.Engine()
        self._bundle: LoadedBundle | None = None
        self._etag: str | None = None
        self._task: asyncio.Task[None] | None = None
        #: Why the newest fetched bundle was refused (None when the newest is the one deciding).
        self.last_error: str | None = None

    @property
    def revision(self) -> str | None:
        """The revision deciding now, or None before the first bundle."""
        return self._bundle.revision if self._bundle is not None else None

    async def start(self, first_wait_seconds: float = 10.0) -> None:
        """Load the first bundle (waiting up to ``first_wait_seconds`` for the bundle service),
        then poll in the background. Without a bundle the PDP answers unavailable (503) and
        keeps polling."""
        deadline = time.monotonic() + first_wait_seconds
        while self._bundle is None and time.monotonic() < deadline:
            await self.refresh()
            if self._bundle is None:
                await asyncio.sleep(0.25)
        if self._bundle is None:
            log.error("no policy bundle loaded from %s (%s); decisions answer 503 until one is",
                      self._settings.bundle_url, self.last_error)
        self._task = asyncio.get_running_loop().create_task(self._poll_forever(), name="policy-bundle-poll")

    async def close(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.poll_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - whatever happens, keep deciding and keep polling
                self._refused(f"unexpected error while refreshing the bundle: {exc!r}")

    async def refresh(self) -> bool:
        """Fetch the bundle if it changed; load it when it verifies.

        Returns:
            True when a new bundle now decides.
        """
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            async with self._session.get(self._settings.bundle_url, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=self._settings.timeout_seconds)) as resp:
                if resp.status == 304:
                    return False
                if resp.status != 200:
                    self._refused(f"the bundle service answered {resp.status}")
                    return False
                if resp.content_length is not None and resp.content_length > MAX_BUNDLE_BYTES:
                    self._refused(f"the bundle is too large ({resp.content_length} bytes)")
                    return False
                chunks, size = [], 0
                async for chunk in resp.content.iter_chunked(64 * 1024):  # the whole body, bounded
                    size += len(chunk)
                    if size > MAX_BUNDLE_BYTES:
                        self._refused("the bundle is too large")
                        return False
                    chunks.append(chunk)
                tarball = b"".join(chunks)
                signature, etag = resp.headers.get(SIGNATURE_HEADER), resp.headers.get("ETag")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._refused(f"the bundle service is unreachable: {exc!r}", quiet=self._bundle is not None)
            return False
        try:
            loaded = load_bundle(tarball, signature, self._key, self._settings.entrypoint, self._engine)
        except BundleRejected as exc:  # its ETag is not kept: a forged answer cannot stop the next polls
            self._refused(str(exc))
            return False
        previous = self._bundle
        if previous is not None and loaded.signed_at < previous.signed_at:
            self._refused(f"bundle {loaded.revision} was signed before the one deciding ({previous.revision}): "
                          "an older policy is not taken back")
            return False
        self._bundle, self._etag, self.last_error = loaded, etag, None
        if previous is None or previous.revision != loaded.revision:
            log.warning("policy bundle %s now decides in-process", loaded.revision)
        return True

    def _refused(self, why: str, quiet: bool = False) -> None:
        if why != self.last_error and not quiet:
            log.error("policy bundle refused (%s); %s keeps deciding", why, self.revision or "nothing")
        self.last_error = why

    async def decide(self, policy_input: dict[str, Any]) -> Decision:
        """Decide once, in-process.

        Args:
            policy_input: the ``input`` document (subject, action, resource, request).

        Returns:
            The parsed decision (deny on undefined or malformed answers), exactly as the OPA
            sidecar would decide with the same bundle.

        Raises:
            PdpUnavailable: no bundle loaded yet, or the evaluation failed (a trap, a built-in
                outside what is reproduced in-process).
        """
        bundle = self._bundle
        if bundle is None:
            raise PdpUnavailable(f"no policy bundle loaded yet ({self.last_error or 'still fetching'})")
        key = cache_key(bundle.revision, policy_input) if bundle.cacheable else None
        decision = self.cache.get(key) if key is not None else None
        if decision is None:
            decision, high_risk = self._evaluate(bundle, policy_input)
            if key is not None:
                self.cache.put(key, policy_input, decision, high_risk)
        if self._reference is not None:
            await self._compare(policy_input, decision)
        return decision

    def _evaluate(self, bundle: LoadedBundle, policy_input: dict[str, Any]) -> tuple[Decision, Any]:
        """The decision and the document's ``high_risk`` as the policy wrote it."""
        try:
            return evaluate_decision(bundle.policy, self._settings.entrypoint, policy_input)
        except WasmPolicyError as exc:
            log.error("in-process policy evaluation failed: %s", exc)
            raise PdpUnavailable(str(exc)) from None

    async def _compare(self, policy_input: dict[str, Any], decision: Decision) -> None:
        assert self._reference is not None
        try:
            reference = await self._reference.decide(policy_input)
        except PdpUnavailable:
            self.comparison.skipped += 1
            return
        if reference.policy_revision != decision.policy_revision:
            self.comparison.skipped += 1
            return
        self.comparison.compared += 1
        if reference != decision:
            self.comparison.mismatched += 1
            log.error("in-process decision differs from OPA's on revision %s\ninput: %s\nin-process: %r\nOPA: %r",
                      decision.policy_revision, json.dumps(policy_input, ensure_ascii=False), decision, reference)
