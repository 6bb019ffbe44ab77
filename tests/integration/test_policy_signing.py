"""Signed policy bundles (issue "Scale out and deploy", policy distribution): the bundle
service signs every bundle, OPA verifies it, the enforced revision is in the proxy's
health and in every audit record; a bundle with a bad signature is refused and the last
good one keeps deciding."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.support.stack import Stack
from wmsgate.devstack import generate_rsa_key


def _health_policy(stack: Stack) -> dict[str, Any]:
    return httpx.get(f"{stack.proxy}/_gateway/health", timeout=10).json()["policy"]


def test_bundles_are_signed_and_the_enforced_revision_is_in_health_and_audit(stack: Stack) -> None:
    raw = httpx.get(f"{stack.stack.policy_url}/bundles/wms.tar.gz", timeout=10).content
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as bundle:
        names = bundle.getnames()
        signatures = json.load(bundle.extractfile(next(n for n in names if n.endswith(".signatures.json"))))
    assert signatures["signatures"] and signatures["signatures"][0].count(".") == 2  # a JWS (RS256)
    policy = _health_policy(stack)
    assert policy["active"] and policy["active"] == policy["serving"]
    with stack.client("picker.hf") as picker:
        decision_id = picker.get("/api/picking/tasks", params={"page_size": 1}).headers["X-Decision-Id"]
    assert stack.audit_record(decision_id)["policy_revision"] == policy["active"]


class _BundleServer:
    """Serves one fixed bundle where the bundle service was (OPA keeps polling it)."""

    def __init__(self, host: str, port: int, bundle: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(bundle)))
                self.end_headers()
                self.wfile.write(bundle)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_bundle_with_a_bad_signature_is_refused_and_the_last_good_one_keeps_deciding(
        stack: Stack, tmp_path: Path) -> None:
    good = _health_policy(stack)["active"]
    assert good
    # a policy that would allow everything, signed with a key OPA does not trust
    forged_src = tmp_path / "forged"
    for layer in (stack.stack.settings.policy_base, stack.stack.settings.policy_dir):
        shutil.copytree(layer, forged_src, ignore=shutil.ignore_patterns(".*", "*_test.rego"), dirs_exist_ok=True)
    (forged_src / "wms" / "authz" / "allow_all.rego").write_text(
        "package wms.authz\n\nallow if input.subject.username == \"picker.hf\"\n", encoding="utf-8")
    other_key, other_pub = tmp_path / "other.pem", tmp_path / "other.pub.pem"
    generate_rsa_key(other_key, other_pub)
    out = tmp_path / "forged.tar.gz"
    built = subprocess.run([str(stack.stack.tools.opa), "build", "--bundle", "--revision", "sha256:forged",
                            "--ignore", "schemas", "--signing-key", str(other_key), "--signing-alg", "RS256",
                            "--output", str(out), "."], cwd=forged_src, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    opa_log = stack.stack.logs / "opa.log"
    mark = opa_log.stat().st_size
    stack.stack.stop_service("policy-service")
    fake = _BundleServer(stack.stack.settings.host, stack.stack.settings.ports.policy, out.read_bytes())
    try:
        deadline = time.monotonic() + 20
        while True:  # OPA fetched it and refused it (signature verification)
            log = opa_log.read_bytes()[mark:].decode(errors="replace")
            if "verif" in log.lower() or "signature" in log.lower():
                break
            assert time.monotonic() < deadline, f"OPA did not report a refused bundle:\n{log[-2000:]}"
            time.sleep(0.5)
        assert _health_policy(stack)["active"] == good
        with stack.client("picker.hf") as picker:
            refused = picker.get("/api/reports/finance")  # the forged policy would let it through
            assert refused.status_code == 403
        assert stack.audit_record(refused.headers["X-Decision-Id"])["policy_revision"] == good
    finally:
        fake.close()
        stack.stack.start_policy_service()
