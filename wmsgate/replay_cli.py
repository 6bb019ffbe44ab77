"""``wmsgate policy replay``: what would a draft policy change for the requests already recorded?

The draft is a deployment's policy folder (built with the product's base layer, like the
bundle service does, without running its tests: a replay is how you find out which
tests to change) or a built Wasm bundle (``opa build -t wasm``). The baseline is the
bundle the proxy runs now (fetched from ``opa.wasm_bundle_url`` and checked against
``opa.bundle_public_key_file``), or ``--baseline`` (a folder or a bundle).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from joserfc.jwk import RSAKey

from authorizer.audit import AuditQuery, AuditStore
from authorizer.authz.bundle_signature import SIGNATURE_HEADER, BundleRejected, verify_bundle
from authorizer.authz.replay import ReplayPolicy, ReplayReport, policy_from_bundle, replay
from authorizer.config import ConfigError, GatewayConfig, load_config
from wmsgate.tools import REPO, locate_tools


class ReplaySetupError(Exception):
    """A bundle to replay with cannot be built, fetched or read (the message says which and why)."""


def bundle_policy(tarball: bytes, what: str) -> ReplayPolicy:
    """A replay side from a Wasm bundle's bytes.

    Raises:
        ReplaySetupError: not a Wasm bundle this process can run.
    """
    try:
        return policy_from_bundle(tarball)
    except BundleRejected as exc:
        raise ReplaySetupError(f"{what}: {exc}") from None


def built_policy(source: Path, what: str) -> ReplayPolicy:
    """A replay side from a policy folder (a deployment layer) or a ``.tar.gz`` Wasm bundle.

    Raises:
        ReplaySetupError: the folder does not build (compiler output included) or the file is unusable.
    """
    from policy_service.builder import BundleBuilder

    if source.is_file():
        return bundle_policy(source.read_bytes(), f"{what} {source}")
    if not source.is_dir():
        raise ReplaySetupError(f"{what} {source} is neither a policy folder nor a bundle file")
    with tempfile.TemporaryDirectory(prefix="wmsgate-replay-") as work:
        result = BundleBuilder((REPO / "rego" / "base", source.resolve()), locate_tools().opa, Path(work),
                               run_tests=False).build()
        if not result.ok or result.wasm_bundle is None:
            raise ReplaySetupError(f"{what} {source} does not build ({result.revision}):\n{result.error}")
        return bundle_policy(result.wasm_bundle.read_bytes(), f"{what} {source}")


async def served_policy(config: GatewayConfig) -> ReplayPolicy:
    """The bundle the proxy decides with now, from the bundle service, signature checked.

    Raises:
        ReplaySetupError: no ``opa.wasm_bundle_url`` / key configured, the service cannot be
            reached, or the bundle's signature is not valid.
    """
    url, key_file = config.opa.wasm_bundle_url, config.opa.bundle_public_key_file
    if url is None or key_file is None:
        raise ReplaySetupError("the config has no opa.wasm_bundle_url and opa.bundle_public_key_file: "
                               "pass --baseline (a policy folder or bundle)")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session, \
                session.get(url) as resp:
            resp.raise_for_status()
            tarball, signature = await resp.read(), resp.headers.get(SIGNATURE_HEADER)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ReplaySetupError(f"the live bundle cannot be fetched from {url}: {exc}") from None
    try:
        verify_bundle(tarball, signature, RSAKey.import_key(key_file.read_bytes()))
    except BundleRejected as exc:
        raise ReplaySetupError(f"the live bundle from {url} is refused: {exc}") from None
    return bundle_policy(tarball, f"the live bundle from {url}")


async def run_replay(url: str, query: AuditQuery, baseline: ReplayPolicy, draft: ReplayPolicy) -> ReplayReport:
    """Replay every record ``query`` selects (its limit ignored), oldest first, from the store at ``url``."""
    store = AuditStore(url)
    try:
        return await replay(store.iter_chain(query), baseline, draft)
    finally:
        await store.close()


def render(report: dict[str, Any]) -> str:
    """The report (:meth:`ReplayReport.as_dict`) as text: a summary line, then one line per group."""
    lines = [f"策略回放 / policy replay: {report['baseline']} -> {report['draft']}",
             f"重放 {report['replayed']} 条记录，{report['changed']} 条会改变（{report['widening']} 条放宽）/ "
             f"replayed {report['replayed']} records: {report['changed']} would change, {report['widening']} of "
             f"them widen access ({report['skipped']} without a stored input, {report['failed']} failed)"]
    columns = ("kind", "records", "roles", "module", "verb", "route", "detail", "examples")
    cells = [[", ".join(g[c]) if c == "examples" else str(g[c]) for c in columns] for g in report["groups"]]
    if cells:
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
        lines.append("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def cmd_policy_replay(args: argparse.Namespace) -> int:
    """Re-decide the recorded requests under the draft and the baseline; print what flips or widens.

    Returns:
        0; 1 when ``--max-changes`` is given and more records would change, an input could not
        be decided, or nothing was replayed (a CI gate fails closed); 2 when a bundle or the
        config cannot be used.
    """
    try:
        config = load_config(Path(args.config), need_secrets=False)
        draft = built_policy(Path(args.bundle), "draft")
        baseline = built_policy(Path(args.baseline), "baseline") if args.baseline else asyncio.run(
            served_policy(config))
    except (ConfigError, ReplaySetupError) as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 2
    query = AuditQuery(since=args.since, until=args.until, user=args.user, module=args.module, role=args.role)
    report = asyncio.run(run_replay(args.db or config.audit.url, query, baseline, draft)).as_dict()
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else render(report))
    if args.max_changes is not None:  # a gate fails closed: what could not be judged does not pass
        problems = []
        if report["changed"] > args.max_changes:
            problems.append(f"{report['changed']} records would change (more than --max-changes {args.max_changes})")
        if report["failed"]:
            problems.append(f"the draft or the baseline could not decide {report['failed']} recorded input(s)")
        if not report["replayed"]:
            problems.append("no recorded request was replayed (wrong store or window?)")
        for problem in problems:
            print(f"wmsgate: {problem}", file=sys.stderr)
        return 1 if problems else 0
    return 0


def _service_url(args: argparse.Namespace) -> str:
    """The bundle service's base URL: ``--service``, else the config's ``opa.policy_status_url``.

    Raises:
        ReplaySetupError: neither is given.
    """
    if args.service:
        return str(args.service).rstrip("/")
    config = load_config(Path(args.config), need_secrets=False)
    if not config.opa.policy_status_url:
        raise ReplaySetupError("no bundle service: pass --service URL")
    return config.opa.policy_status_url.rstrip("/").removesuffix("/status")


def cmd_policy_held(args: argparse.Namespace) -> int:
    """Show the edit the publish gate holds (its replay report); 0 when one is held, 1 when none."""
    import httpx

    try:
        status = httpx.get(f"{_service_url(args)}/status", timeout=30).json()
    except (ConfigError, ReplaySetupError, httpx.HTTPError, ValueError) as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 2
    held = status.get("held")
    if not held:
        print(f"没有待批准的策略修改 / no edit is held; serving {(status.get('serving') or {}).get('revision')}")
        return 1
    report = held.get("report") or {}
    print(f"待批准 / held: {held['revision']} (built {held.get('at')})")
    print(render(report) if "groups" in report else json.dumps(report, ensure_ascii=False))
    return 0


def cmd_policy_approve(args: argparse.Namespace) -> int:
    """Let a held edit go live, as the admin whose token ``wmsgate login --mfa`` stored (or ``$WMSGATE_TOKEN``)."""
    import httpx

    from wmsgate.access_cli import CliError, current_token

    try:
        resp = httpx.post(f"{_service_url(args)}/approve", json={"revision": args.revision}, timeout=60,
                          headers={"Authorization": f"Bearer {current_token()}"})
    except (ConfigError, ReplaySetupError, CliError, httpx.HTTPError) as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 2
    if resp.status_code != 200:
        print(f"拒绝 / refused ({resp.status_code}): {resp.text[:500]}", file=sys.stderr)
        return 1
    print(f"已发布 / now serving {resp.json()['serving']} (approved by {resp.json()['approved_by']}, "
          f"audit record {resp.json()['decision_id']})")
    return 0
