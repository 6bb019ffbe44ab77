"""Building a policy bundle from a folder: snapshot, check, test, ``opa build``."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from joserfc.jwk import RSAKey

from authorizer.authz.bundle_signature import BundleRejected, sign_bundle
from authorizer.authz.inprocess_pdp import read_bundle
from authorizer.authz.opa_wasm import WasmPolicy, WasmPolicyError

#: The policy signing key's id (``kid``), as OPA's configuration names it.
SIGNING_KEY_ID = "wms-policy"
POLICY_SUFFIXES = (".rego", ".yaml", ".yml", ".json")


@dataclass(frozen=True)
class BuildResult:
    """One build attempt.

    Attributes:
        revision: content hash of the source tree (``sha256:`` + 16 hex digits).
        ok: whether the bundle was built.
        bundle: the built ``.tar.gz`` (None when rejected).
        error: why it was rejected (compiler or test output), empty when ok.
        at: when the attempt finished (UTC, ISO 8601).
        wasm_bundle: the same policy compiled to Wasm (``opa build -t wasm``) for the proxy's
            in-process PDP (None when rejected).
        wasm_signature: its signature (:mod:`authorizer.authz.bundle_signature`), '' unsigned.
    """

    revision: str
    ok: bool
    bundle: Path | None
    error: str
    at: str
    wasm_bundle: Path | None = None
    wasm_signature: str = ""


def _policy_files(source: Path) -> list[Path]:
    return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in POLICY_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(source).parts))


def tree_revision(*sources: Path) -> str:
    """Content hash of every policy file of the layers ``sources`` as one tree (relative paths
    and bytes, in path order), ``sha256:<16 hex>``: the layers and the bundle built from them
    have the same revision."""
    files = sorted((str(path.relative_to(source)), str(source), path) for source in sources
                   for path in _policy_files(source))
    digest = hashlib.sha256()
    for rel, _, path in files:
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()[:16]


class LayerConflict(ValueError):
    """Two policy layers hold the same file (a deployment may not replace a base file)."""


def merge_layers(sources: tuple[Path, ...], into: Path) -> None:
    """Copy the layers into one tree, the bundle's root.

    Raises:
        LayerConflict: a file is in more than one layer, or a later layer (a deployment's)
            holds rules (non-test ``.rego``) or data under ``wms/base``.
    """
    owner: dict[Path, Path] = {}
    for index, source in enumerate(sources):
        for path in _policy_files(source):
            rel = path.relative_to(source)
            if index > 0 and (path.suffix == ".rego" and not path.name.endswith("_test.rego")
                              or rel.parts[:2] == ("wms", "base")):
                raise LayerConflict(f"{source}/{rel}: a deployment's layer holds policy data (wms/<name>/data.yaml) "
                                    "and tests (*_test.rego); rules and the gateway's own data (wms/base) are the "
                                    "base layer's, so a deployment cannot weaken them")
            if rel in owner:
                raise LayerConflict(f"{rel} is in two policy layers ({owner[rel]} and {source}); "
                                    "a deployment adds files, it does not replace the base layer's")
            owner[rel] = source
            (into / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, into / rel)


def runs_in_process(wasm_bundle: Path) -> str | None:
    """Why the proxy's in-process PDP could not run the Wasm bundle (a host built-in it does not
    provide, a module it cannot instantiate), or None when it can. An edit it could not run is
    rejected like one that does not compile: OPA and the proxy always run the same revision."""
    try:
        bundle = read_bundle(wasm_bundle.read_bytes())
        WasmPolicy(bundle.wasm, bundle.data)
    except (BundleRejected, WasmPolicyError) as exc:
        return f"the proxy's in-process PDP cannot run this policy: {exc}"
    return None


class BundleBuilder:
    """Builds bundles with the pinned OPA binary.

    Args:
        sources: the policy layers merged into one bundle, e.g. ``rego/base`` (the gateway's
            rules and own data, schemas under ``schemas/``) and a deployment's policy folder
            (``rego/demo`` for the demo WMS); no file may be in two layers.
        opa: the OPA binary.
        workdir: where snapshots and bundles are written.
        run_tests: also run ``opa test``; a failing test rejects the edit.
        timeout_seconds: limit for each OPA command.
        signing_key: RSA private key (PEM) that signs every bundle (``.signatures.json``, RS256,
            OPA's bundle signing format; the Wasm bundle's own signature), or None for unsigned bundles.
        wasm_entrypoints: the rules the Wasm bundle is compiled for (the proxy's decision).
    """

    def __init__(self, sources: tuple[Path, ...], opa: Path, workdir: Path, run_tests: bool = True,
                 timeout_seconds: float = 120.0, signing_key: Path | None = None,
                 wasm_entrypoints: tuple[str, ...] = ("wms/authz/decision",)) -> None:
        self.sources = sources
        self.opa = opa
        self.workdir = workdir
        self.run_tests = run_tests
        self.timeout = timeout_seconds
        self.signing_key = signing_key
        self.wasm_entrypoints = wasm_entrypoints
        workdir.mkdir(parents=True, exist_ok=True)

    def _run(self, *args: str, cwd: Path) -> str | None:
        """Run OPA; return None on success, else its output."""
        proc = subprocess.run([str(self.opa), *args], cwd=cwd, capture_output=True, text=True,
                              timeout=self.timeout, check=False)
        return None if proc.returncode == 0 else (proc.stdout + proc.stderr).strip()[-4000:]

    def build(self) -> BuildResult:
        """Snapshot the source, validate it and build ``wms-<revision>.tar.gz``.

        Validation: ``opa check --strict`` against ``schemas/`` (when present), then
        ``opa test`` (when enabled). The snapshot means an edit made during the
        build cannot mix two versions into one bundle.

        Returns:
            The attempt's result; it never raises for policy errors.
        """
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        with tempfile.TemporaryDirectory(dir=self.workdir, prefix="snapshot-") as tmp:
            snap = Path(tmp) / "policy"
            snap.mkdir()
            try:
                merge_layers(self.sources, snap)
            except (LayerConflict, OSError) as exc:
                return BuildResult(tree_revision(*self.sources), False, None, str(exc), now)
            revision = tree_revision(snap)
            schema = ["--schema", "schemas"] if (snap / "schemas").is_dir() else []
            error = self._run("check", "--strict", *schema, "--ignore", "schemas", ".", cwd=snap)
            if error is None and self.run_tests:
                error = self._run("test", "--ignore", "schemas", ".", cwd=snap)
            if error is None:
                out = self.workdir / f"wms-{revision.split(':')[1]}.tar.gz"
                signing = ["--signing-key", str(self.signing_key), "--signing-alg", "RS256"] \
                    if self.signing_key is not None else []
                error = self._run("build", "--bundle", "--revision", revision, "--ignore", "schemas",
                                  "--ignore", "*_test.rego", *signing, "--output", str(out), ".", cwd=snap)
            if error is None:
                wasm = self.workdir / f"wms-{revision.split(':')[1]}.wasm.tar.gz"
                entrypoints = [arg for e in self.wasm_entrypoints for arg in ("--entrypoint", e)]
                error = self._run("build", "--target", "wasm", *entrypoints, "--bundle", "--revision", revision,
                                  "--ignore", "schemas", "--ignore", "*_test.rego", "--output", str(wasm), ".",
                                  cwd=snap)
                if error is None:
                    error = runs_in_process(wasm)
                if error is None:
                    return BuildResult(revision, True, out, "", now, wasm, self._sign(wasm, revision))
        return BuildResult(revision, False, None, error or "unknown error", now)

    def _sign(self, bundle: Path, revision: str) -> str:
        """The Wasm bundle's signature ('' without a signing key)."""
        if self.signing_key is None:
            return ""
        key = RSAKey.import_key(self.signing_key.read_bytes())
        return sign_bundle(bundle.read_bytes(), revision, key, SIGNING_KEY_ID)

