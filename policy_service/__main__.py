"""Run the policy bundle service:
``python -m policy_service --source rego/base --source SITE_POLICY --opa PATH --workdir DIR``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web

from authorizer.config import OidcSettings
from policy_service.builder import BundleBuilder
from policy_service.gate import GateSettings
from policy_service.server import create_app


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="policy_service", description="OPA policy bundle service")
    parser.add_argument("--source", type=Path, required=True, action="append",
                        help="a policy layer (repeat: rego/base, then the deployment's policy folder)")
    parser.add_argument("--opa", type=Path, required=True, help="OPA binary")
    parser.add_argument("--workdir", type=Path, required=True, help="where bundles are built")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8182)
    parser.add_argument("--poll-seconds", type=float, default=1.0)
    parser.add_argument("--no-tests", action="store_true", help="do not gate edits on opa test")
    parser.add_argument("--signing-key", type=Path, default=None,
                        help="RSA private key (PEM) signing every bundle; OPA verifies with the public key")
    gate = parser.add_argument_group("publish gate", "hold edits that change recorded decisions until approved")
    gate.add_argument("--gate-audit-db", help="SQLAlchemy URL of the audit store to replay (turns the gate on)")
    gate.add_argument("--gate-days", type=float, default=7.0, help="replay this many days of recorded requests")
    gate.add_argument("--gate-max-changes", type=int, default=0,
                      help="at most this many changed records go live without approval")
    gate.add_argument("--gate-issuer", help="the realm's issuer URL (approvers' tokens)")
    gate.add_argument("--gate-audience", default="wms-gateway", help="the audience approvers' tokens carry")
    gate.add_argument("--gate-role", default="sysadmin", help="the realm role an approver needs")
    args = parser.parse_args(argv)
    if args.gate_audit_db and not args.gate_issuer:
        parser.error("--gate-audit-db needs --gate-issuer (approvals are made with the realm's tokens)")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    builder = BundleBuilder(tuple(p.resolve() for p in args.source), args.opa, args.workdir,
                            run_tests=not args.no_tests, signing_key=args.signing_key)
    publish_gate = None
    if args.gate_audit_db:
        publish_gate = (GateSettings(args.gate_audit_db, args.gate_days, args.gate_max_changes, args.gate_role),
                        OidcSettings(issuer=args.gate_issuer.rstrip("/"), audience=args.gate_audience))
    web.run_app(create_app(builder, args.poll_seconds, publish_gate), host=args.host, port=args.port, print=None,
                access_log=None)


if __name__ == "__main__":
    main()
