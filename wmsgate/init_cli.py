"""Onboarding commands: ``wmsgate routes import-openapi``, ``wmsgate init``, ``wmsgate keys new``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml


def cmd_import_openapi(args: argparse.Namespace) -> int:
    """Draft a route map from an OpenAPI document; the undecided routes are listed on stderr.

    Returns:
        0 when every route was decided, 3 when some are marked TODO (the draft is written
        either way), 2 when the document cannot be read.
    """
    from wmsgate.openapi_import import draft_route_map

    try:
        text = Path(args.spec).read_text(encoding="utf-8")
        spec = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
        draft, routes = draft_route_map(spec, args.tenant)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"wmsgate: {args.spec}: {exc}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).write_text(draft, encoding="utf-8")
    else:
        sys.stdout.write(draft)
    todo = [r for r in routes if r.todo]
    print(f"[routes] {len(routes)} route(s) drafted, {len(todo)} to decide (TODO(wmsgate) in the file) / "
          f"已生成 {len(routes)} 条路由,{len(todo)} 条待确认", file=sys.stderr)
    for r in todo:
        print(f"  {r.method} {r.template}: {'; '.join(r.todo)}", file=sys.stderr)
    return 3 if todo else 0


def cmd_init(args: argparse.Namespace) -> int:
    """Write a deployment folder (see :mod:`wmsgate.scaffold`).

    Returns:
        0, or 2 when the folder is not empty or the OpenAPI document cannot be read.
    """
    from wmsgate.scaffold import InitOptions, checklist, load_openapi, scaffold

    try:
        spec = load_openapi(Path(args.openapi)) if args.openapi else None
        options = InitOptions(
            wms_url=args.wms_url, realm=args.realm, warehouses=tuple(_codes(args.warehouses)),
            channels=tuple(_codes(args.channels)), order_types=tuple(_codes(args.order_types)),
            port_offset=args.port_offset, tenant=args.tenant_per_warehouse, openapi=spec)
        files = scaffold(Path(args.dir), options)
    except (OSError, ValueError) as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 2
    root = Path(args.dir)
    for path in files:
        print(f"  {path.relative_to(root)}")
    print(f"部署目录已创建 / deployment folder written: {root} ({len(files)} files). "
          f"Next: {root / 'README.md'} and docs/onboarding.md")
    print("待您决定 / still yours to decide:")
    for item in checklist(root, options):
        print(f"  - {item}")
    return 0


def _codes(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()] or ["*"]


def cmd_keys_new(args: argparse.Namespace) -> int:
    """Make a signing key pair: Ed25519 for the audit trail's checkpoints (``--kind audit``) or
    RSA-2048 for policy bundles (``--kind policy``). An existing key is never overwritten.

    Returns:
        0, or 2 when the file exists.
    """
    from authorizer.audit.chain import generate_key
    from wmsgate.devstack import generate_rsa_key

    path = Path(args.path)
    public = path.with_suffix(".pub") if args.kind == "audit" else path.with_name(path.stem + ".pub.pem")
    if path.exists() or public.exists():
        print(f"wmsgate: {path} or {public} exists; not overwritten (a new key would orphan what the old one signed)",
              file=sys.stderr)
        return 2
    path.parent.mkdir(parents=True, exist_ok=True)
    if args.kind == "audit":
        generate_key(path)
        path.chmod(0o600)
    else:
        generate_rsa_key(path, public)
    print(f"{path} (private, mode 0600) and its public key {public}")
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    """Check a deployment's policy layer with the product's base layer: ``opa check --strict``
    against the input schema, then ``opa test`` (the same gate the bundle service applies).

    Also: every permission names a module some layer defines and a known verb
    (:mod:`wmsgate.policy_lint`).

    Returns:
        0 when it would be served and every name resolves, 1 otherwise (the reasons are printed).
    """
    import tempfile

    from policy_service.builder import BundleBuilder
    from wmsgate.policy_lint import policy_problems
    from wmsgate.tools import REPO, locate_tools

    layers = (REPO / "rego" / "base", Path(args.policy).resolve())
    with tempfile.TemporaryDirectory(prefix="wmsgate-policy-check-") as work:
        result = BundleBuilder(layers, locate_tools().opa, Path(work)).build()
    if not result.ok:
        print(f"策略被拒绝 / policy rejected ({result.revision}):\n{result.error}", file=sys.stderr)
        return 1
    problems = policy_problems(layers[0], layers[1])
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    if problems:
        print(f"策略可编译但有 {len(problems)} 处名称无效 / the policy compiles and passes its tests, but "
              f"{len(problems)} name(s) point at nothing (a typo grants nothing)", file=sys.stderr)
        return 1
    print(f"策略检查通过 / policy OK: {result.revision} (rego/base + {args.policy})")
    return 0
