"""``wmsgate``: run the gateway, the local demo stack, and search the audit trail."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import faulthandler
import json
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from authorizer import timeparse
from wmsgate import init_cli, review_cli, rollout_cli
from wmsgate.tools import REPO

DEMO_USERS = ("picker.hf", "reviewer.hf", "packer.hf", "keeper.hf", "keeper.sh", "keeper.sz", "supervisor",
              "ops.taobao", "ops.amazon", "finance", "admin1", "admin2", "temp.picker01")


def _default_state() -> Path:
    """Where a proxy keeps its default audit spool: ``WMSGATE_STATE`` when the caller set it, else
    ``<repo>/.state`` (read, never set: config files name their paths themselves)."""
    return Path(os.environ.get("WMSGATE_STATE", REPO / ".state"))


# --- proxy --------------------------------------------------------------------------------

def cmd_proxy(args: argparse.Namespace) -> int:
    """Run the proxy in the foreground until SIGINT/SIGTERM."""
    from aiohttp import web

    from authorizer.authz.routes import RouteMapError
    from authorizer.config import ConfigError, ManagementListener, load_config
    from authorizer.tls import server_context
    from proxy.app import create_app
    from proxy.collector import freeze_startup_objects
    from proxy.heap import CHeap
    from wmsgate.workers import supervise, worker_spool

    logging.basicConfig(level=os.environ.get("WMSGATE_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: where is it stuck?
    if args.workers < 1 or args.workers > 64:
        print("wmsgate: --workers must be between 1 and 64", file=sys.stderr)
        return 2
    if args.workers > 1 and args.worker_index is None:
        return supervise(args.config, args.workers, args.port, args.management_port)
    try:
        config = load_config(Path(args.config))
        spool = worker_spool(config.audit.spool_file or _default_state() / "audit-spool.jsonl",
                             args.worker_index)
        config = dataclasses.replace(config, audit=dataclasses.replace(config.audit, spool_file=spool))
        if args.management_port is not None:
            config = dataclasses.replace(config, management=ManagementListener(
                config.management.host if config.management else "127.0.0.1", args.management_port))
        offset = 0 if args.management_port is not None else (args.worker_index or 0)  # an explicit port is exact
        app = create_app(config, spool_dir=_default_state(), management_offset=offset, heap=CHeap.load())
        app.on_startup.append(freeze_startup_objects)  # after the gateway's start-up: what it built is kept
    except (ConfigError, RouteMapError, ValueError) as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 2
    port = args.port or config.port
    try:
        tls = server_context(config.tls) if config.tls is not None else None
    except (ssl.SSLError, OSError) as exc:
        print(f"wmsgate: listen.tls: cannot use {config.tls.cert_file} / {config.tls.key_file}: {exc}",
              file=sys.stderr)
        return 2
    try:
        web.run_app(app, host=config.host, port=port, access_log=None, print=None, handle_signals=True,
                    reuse_port=args.worker_index is not None, ssl_context=tls, loop=_event_loop())
    except OSError as exc:  # the public or the management port is taken
        print(f"wmsgate: cannot listen: {exc}", file=sys.stderr)
        return 2
    return 0


def _event_loop() -> asyncio.AbstractEventLoop:
    """The proxy's event loop: the standard library's, or uvloop with ``WMSGATE_EVENT_LOOP=uvloop``.

    Measured with ``make profile`` on the 2-core CI machine (docs/performance.md): uvloop served
    the same requests per second within the run-to-run spread, and it holds the GIL during socket
    writes (the standard loop releases it), which the audit writer's hashing thread then waits on;
    so it is not the default."""
    if os.environ.get("WMSGATE_EVENT_LOOP", "asyncio") == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


# --- demo stack -------------------------------------------------------------------------------

def _banner(stack: Any) -> str:
    users = ", ".join(DEMO_USERS)
    p = stack.proxy_url
    kc = stack.keycloak_url
    return f"""
================ WMS 访问网关 / WMS access gateway: running ================
  proxy (PEP)      {p}            health: {p}/_gateway/health
  WMS in a browser {p}/            log in at Keycloak (SSO), e.g. as picker.hf
  admin console    {p}/_gateway/ui/            approvals, people, audit trail
  Keycloak         {kc}            admin console: {kc}/admin  \
({stack.settings.kc_admin[0]} / {stack.settings.kc_admin[1]})
                   realm "wms", issuer {stack.issuer}
  Keycloak mgmt    http://127.0.0.1:{stack.settings.ports.keycloak_management}            health: /health/ready
  OPA (PDP)        {stack.opa_url}            policy bundle from the bundle service
  policy service   {stack.policy_url}            /status; edits to rego/ go live in seconds
  demo WMS         {stack.wms_url}            (unprotected; reach it through the proxy)
  alerting         {stack.alerting_url}            Keycloak events + gateway decisions -> alerts
                   rules: config/alert-rules.yaml; notifiers: config/alerting.yaml
  audit trail      {stack.audit_db}
  alerts           {stack.alerts_db}
  logs             {stack.logs}

  演示用户 demo users (password wms-demo): {users}
  keeper.*, supervisor, admin1, admin2 also need a TOTP code
  (secret O5WXGLLEMVWW6LLUN52HALLTMVRXEZLU; `.venv/bin/wmsgate token keeper.hf` computes it).

  Try it / 试一试:
    TOKEN=$(curl -s -d grant_type=password -d client_id=wms-cli -d username=picker.hf -d password=wms-demo \\
      {stack.issuer}/protocol/openid-connect/token | \
python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    curl -s -H "Authorization: Bearer $TOKEN" '{p}/api/picking/tasks?page_size=3'
    curl -s -H "Authorization: Bearer $TOKEN" '{p}/api/reports/finance'      # 403: pickers see no finance data
    .venv/bin/wmsgate audit search --user picker.hf --since 1h
    .venv/bin/wmsgate policy explain --user ops.taobao --method GET --path /api/orders/SO2024110100009
    WMSGATE_TOKEN=$(.venv/bin/wmsgate token admin1) .venv/bin/wmsgate alerts list

  Ctrl-C stops everything. KEEP=1 make demo keeps the realm and WMS data of the last run.
===========================================================================
"""


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole stack in the foreground until Ctrl-C."""
    from wmsgate.devstack import LocalStack, StackSettings
    from wmsgate.tools import ToolMissing

    keep = args.keep or os.environ.get("KEEP", "") not in ("", "0")
    try:
        stack = LocalStack(StackSettings(state=_default_state(), fresh=not keep))
    except ToolMissing as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 2
    print("starting Keycloak, OPA, demo WMS and the proxy (Keycloak takes 20-60 s)...", flush=True)
    return _run_foreground(stack, stack.start, lambda: _banner(stack))


def cmd_up(args: argparse.Namespace) -> int:
    """Run a deployment folder's services in the foreground until Ctrl-C."""
    from authorizer.config import ConfigError
    from wmsgate.deployment_stack import DeploymentFolder, DeploymentStack
    from wmsgate.tools import ToolMissing

    admin = tuple(args.keycloak_admin.split(":", 1)) if args.keycloak_admin else ("kcadmin", "kcadmin-demo")
    try:
        stack = DeploymentStack(DeploymentFolder(Path(args.config).resolve()), args.keycloak_url,
                                admin)  # type: ignore[arg-type]
    except (ConfigError, ToolMissing) as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 2
    print(f"starting the gateway for {args.config} ...", flush=True)

    def banner() -> str:
        realm = stack.config.oidc.issuer.rpartition("/")[2]
        realm_note = "created from realm.yaml" if stack.realm_created else (
            "exists, left as it is: edits to realm.yaml are not applied (--replace-realm re-creates it, losing "
            "the people, sessions and changes made in Keycloak since)")
        return (f"wmsgate is up for {args.config}\n  proxy     {stack.proxy_url}  (health: /_gateway/health)\n"
                f"  Keycloak  {stack.keycloak_url}  realm {realm} {realm_note}\n"
                f"  OPA       {stack.config.opa.url}\n  logs      {stack.logs}\n"
                "gateway.yaml and routes.yaml are read at start (restart to apply edits); policy/ edits are "
                "live.\nCtrl-C (or SIGTERM to this process) stops everything.")

    return _run_foreground(stack, lambda: stack.start(args.replace_realm), banner)


def _run_foreground(stack: Any, start: Any, banner: Any) -> int:
    """Start ``stack``, print ``banner()``, wait until Ctrl-C/SIGTERM or a service dies, stop it."""
    from wmsgate.processes import StackError

    def _terminate(_signo: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)  # also when started with SIGINT ignored (e.g. from a script)
    try:
        start()
        print(banner(), flush=True)
        while not stack.failed():
            time.sleep(0.5)
        print(f"wmsgate: service(s) stopped unexpectedly: {', '.join(stack.failed())}; see {stack.logs}",
              file=sys.stderr)
        return 1
    except StackError as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        stack.stop()


# --- audit ----------------------------------------------------------------------------------

def parse_time(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """Parse ``30m``/``1h``/``2d`` (ago) or an ISO 8601 time (naive = UTC) into an aware UTC datetime.

    Raises:
        argparse.ArgumentTypeError: neither form.
    """
    try:
        return timeparse.parse_time(value, now)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_COLUMNS = ("time_utc", "username", "decision", "http_status", "upstream_status", "module", "verb", "resource_id",
            "warehouse", "reason_code", "client_ip")


def format_table(rows: list[dict[str, Any]]) -> str:
    """Render audit rows as an aligned text table (UTC times with milliseconds)."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) if c != "time_utc" else
              dt.datetime.fromtimestamp(r["ts_ms"] / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
              for c in _COLUMNS] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _audit_url(args: argparse.Namespace) -> str:
    """The audit store URL from ``--db`` or the config file.

    Raises:
        authorizer.config.ConfigError: the config cannot be read.
    """
    from authorizer.config import load_config

    if args.db is not None:
        return str(args.db)
    return load_config(Path(args.config), need_secrets=False).audit.url


def _audit_url_or_report(args: argparse.Namespace) -> str | None:
    """:func:`_audit_url`, or None after printing why the config cannot be read."""
    from authorizer.config import ConfigError

    try:
        return _audit_url(args)
    except ConfigError as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return None


def _audit_query(args: argparse.Namespace, limit: int) -> Any:
    from authorizer.audit import AuditQuery

    return AuditQuery(since=args.since, until=args.until, user=args.user, module=args.module, verb=args.verb,
                      resource_id=args.resource, warehouse=args.warehouse, channel=args.channel, decision=args.decision,
                      approval_id=args.approval, client_ip=args.client_ip, device_id=args.device, role=args.role,
                      limit=limit, offset=max(0, getattr(args, "offset", 0)))


def cmd_audit_search(args: argparse.Namespace) -> int:
    """Print matching audit records, newest first."""
    from authorizer.audit import AuditStore

    url = _audit_url_or_report(args)
    if url is None:
        return 2
    query = _audit_query(args, args.limit)

    async def run() -> list[dict[str, Any]]:
        store = AuditStore(url)
        try:
            return await store.search(query)
        finally:
            await store.close()

    rows = asyncio.run(run())
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False, default=str))
    else:
        print(format_table(rows))
        print(f"({len(rows)} record(s))")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check the hash chain and the signed checkpoints; name the first problems; exit 1 if any."""
    from authorizer.audit import AuditStore
    from authorizer.audit.chain import load_public_key
    from authorizer.audit.witness import DirectoryWitness
    from authorizer.config import ConfigError, load_config

    url, key_path = args.db, Path(args.public_key) if args.public_key else None
    archive_dir = Path(args.archive_dir) if args.archive_dir else None
    witness_dir = Path(args.witness) if args.witness else None
    if url is None or key_path is None or args.witness == "":
        try:
            config = load_config(Path(args.config), need_secrets=False)
        except ConfigError as exc:
            print(f"wmsgate: {exc}", file=sys.stderr)
            return 2
        url = url or config.audit.url
        archive_dir = archive_dir or config.audit.archive_dir
        if args.witness == "":
            if config.audit.witness_dir is None:
                print("wmsgate: --witness: no audit.witness_dir in the config; pass --witness DIR", file=sys.stderr)
                return 2
            witness_dir = config.audit.witness_dir
        if key_path is None and config.audit.signing_key_file is not None:
            pub = config.audit.signing_key_file.with_suffix(".pub")
            key_path = pub if pub.exists() else config.audit.signing_key_file
    if key_path is None:
        print("wmsgate: no public key: pass --public-key", file=sys.stderr)
        return 2
    public_key = load_public_key(key_path)

    async def run() -> Any:
        store = AuditStore(url)
        try:
            since_seq = await store.first_seq_since(args.since) if args.since else None
            witness = DirectoryWitness(witness_dir) if witness_dir is not None else None
            return await store.verify(public_key, since_seq, archive_dir, witness)
        finally:
            await store.close()

    result = asyncio.run(run())
    for problem in result.problems:
        print(f"{problem.kind.upper():14} seq={problem.seq} {problem.decision_id} {problem.message}")
    verdict = "OK" if result.ok else "FAILED"
    print(f"{verdict}: {result.records} records, {result.checkpoints} checkpoints, "
          f"chain head seq={result.head_seq} hash={result.head_hash}")
    return 0 if result.ok else 1


def cmd_audit_archive(args: argparse.Namespace) -> int:
    """Archive records older than ``--older-than`` (default: the configured retention) to verified
    segment files and remove them behind signed archive markers; print each segment."""
    from authorizer.audit import AuditStore
    from authorizer.audit.chain import load_private_key
    from authorizer.audit.retention import ArchiveError, archive_older_than
    from authorizer.audit.store import ArchiveConflict
    from authorizer.config import ConfigError, load_config

    url, cutoff = args.db, args.older_than
    archive_dir = Path(args.archive_dir) if args.archive_dir else None
    key_file = Path(args.private_key) if args.private_key else None
    if None in (url, cutoff, archive_dir, key_file):
        try:
            audit = load_config(Path(args.config), need_secrets=False).audit
        except ConfigError as exc:
            print(f"wmsgate: {exc}", file=sys.stderr)
            return 2
        url, archive_dir, key_file = (url or audit.url, archive_dir or audit.archive_dir,
                                      key_file or audit.signing_key_file)
        if cutoff is None and audit.retention_days is not None:
            cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=audit.retention_days)
    if archive_dir is None or key_file is None or cutoff is None:
        print("wmsgate: archiving needs an archive folder, the signing key and a cutoff "
              "(--archive-dir, --private-key, --older-than, or audit.* in the config)", file=sys.stderr)
        return 2
    key = load_private_key(key_file)

    async def run() -> list[Any]:
        store = AuditStore(url)
        try:
            return await archive_older_than(store, key, archive_dir, cutoff)
        finally:
            await store.close()

    try:
        segments = asyncio.run(run())
    except (ArchiveError, ArchiveConflict, OSError) as exc:
        print(f"wmsgate: archive failed, nothing was removed for this segment: {exc}", file=sys.stderr)
        return 1
    for seg in segments:
        print(f"archived seq {seg.first_seq}-{seg.last_seq} ({seg.records} records) -> {seg.file} sha256={seg.sha256}")
    print(f"{len(segments)} segment(s) archived (records before {cutoff.isoformat()})")
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Stream matching records to stdout as CSV (UTF-8 with BOM) or JSON lines, with the chain
    head. The export is itself recorded in the audit trail first (who ran it on this machine,
    with which filters) and every row carries that record's watermark, as exports through the
    gateway do; ``wmsgate audit find-export`` names it."""
    from authorizer.audit import AuditStore
    from authorizer.audit.export import export_csv, export_jsonl
    from authorizer.enforce.exports import watermark

    url = _audit_url_or_report(args)
    if url is None:
        return 2
    query = _audit_query(args, 0)
    record = _local_export_record(args)

    async def run() -> None:
        store = AuditStore(url)
        try:
            await store.insert_many([record])  # committed before the first row is written
            mark = watermark(record.decision_id)
            chunks = export_csv(store, query, mark) if args.format == "csv" else export_jsonl(store, query, mark)
            async for chunk in chunks:
                sys.stdout.write(chunk)
        finally:
            await store.close()

    sys.stdout.reconfigure(encoding="utf-8", newline="")  # type: ignore[attr-defined]
    asyncio.run(run())
    print(f"wmsgate: export {record.decision_id} recorded in the audit trail; every row carries "
          f"wmsgate:{record.decision_id}", file=sys.stderr)
    return 0


def _local_export_record(args: argparse.Namespace) -> Any:
    """The audit record of an audit-trail export run with this command line (the operator is
    the local OS user: the command reads the database directly, not through the gateway)."""
    import getpass
    import socket
    import time
    import uuid

    from authorizer.audit import AuditRecord
    from authorizer.messages import TEXTS

    filters = {name: getattr(args, name) for name in ("since", "until", "user", "module", "verb", "resource",
                                                      "warehouse", "channel", "decision", "approval", "client_ip",
                                                      "device", "role") if getattr(args, name, None) is not None}
    text = TEXTS["audit_exported_locally"]
    return AuditRecord(
        decision_id=uuid.uuid4().hex, ts_ms=int(time.time() * 1000), decision="allow",
        reason_code="audit_exported_locally", http_status=0, method="CLI", path="wmsgate audit export",
        username=f"local:{getpass.getuser()}", module="audit", verb="export", reason_zh=text.zh, reason_en=text.en,
        detail={"format": args.format, "filters": {k: str(v) for k, v in filters.items()},
                "host": socket.gethostname()})


def cmd_audit_verify_export(args: argparse.Namespace) -> int:
    """Verify a JSONL export against its hashes and the signed chain head; exit 1 on problems."""
    from authorizer.audit.chain import load_public_key
    from authorizer.audit.export import verify_jsonl

    with open(args.file, encoding="utf-8") as fh:
        count, problems = verify_jsonl(fh, load_public_key(Path(args.public_key)))
    for problem in problems:
        print(f"{problem.kind.upper():14} seq={problem.seq} {problem.decision_id} {problem.message}")
    print(f"{'OK' if not problems else 'FAILED'}: {count} records checked")
    return 0 if not problems else 1


def cmd_audit_find_export(args: argparse.Namespace) -> int:
    """Name who exported a file from its watermark (:mod:`wmsgate.export_cli`)."""
    from wmsgate.export_cli import find_export

    url = _audit_url_or_report(args)
    if url is None:
        return 2
    return find_export(args.file, url, args.json)


def cmd_audit_anomalies(args: argparse.Namespace) -> int:
    """Run the built-in anomaly queries and print the findings."""
    from authorizer.audit import AuditStore
    from authorizer.audit.anomalies import Thresholds, find_anomalies

    url = _audit_url_or_report(args)
    if url is None:
        return 2
    since = args.since or parse_time("1d")

    async def run() -> list[Any]:
        store = AuditStore(url)
        try:
            return await find_anomalies(store, since, Thresholds(
                status_changes=args.status_changes, deletes=args.deletes, delete_window_s=args.delete_window,
                denials=args.denials))
        finally:
            await store.close()

    findings = asyncio.run(run())
    for finding in findings:
        print(json.dumps(finding.document(), ensure_ascii=False) if args.json else
              f"{finding.kind:24} {finding.summary}  [{finding.document()['first']} .. {finding.document()['last']}]")
    if not args.json:
        print(f"({len(findings)} finding(s))")
    return 0


# --- helpers ----------------------------------------------------------------------------------

def cmd_token(args: argparse.Namespace) -> int:
    """Print an access token for a demo user (password grant on wms-cli, TOTP computed from the demo secret)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    import pyotp

    from wmsgate.realm import demo_overlay

    overlay = demo_overlay()
    form = {"grant_type": "password", "client_id": "wms-cli", "username": args.username,
            "password": args.password or overlay["password"]}
    spec = next((u for u in overlay["users"] if u["username"] == args.username), {})
    totp = None
    if spec.get("otp"):
        import base64
        totp = pyotp.TOTP(base64.b32encode(overlay["totp_secret"].encode()).decode())
    url = f"{args.issuer.rstrip('/')}/protocol/openid-connect/token"
    for attempt in range(2):
        if totp is not None:
            form["totp"] = totp.now()
        req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                print(json.loads(resp.read())["access_token"])
            return 0
        except urllib.error.HTTPError as exc:
            if exc.code != 401 or totp is None or attempt:
                print(f"wmsgate: token request failed: {exc}", file=sys.stderr)
                return 1
            # Keycloak takes each one-time code once: wait for the next 30-second code
            time.sleep(30.5 - time.time() % 30)
        except OSError as exc:
            print(f"wmsgate: token request failed: {exc}", file=sys.stderr)
            return 1
    return 1


def _load_config(path: str) -> Any:
    from authorizer.config import load_config

    return load_config(Path(path), need_secrets=False)


def cmd_policy_explain(args: argparse.Namespace) -> int:
    """Explain the decision the gateway would make for a user's request (nothing is forwarded)."""
    from wmsgate import policy_cli

    config = _load_config(args.config)
    try:
        person = policy_cli.Directory(config).person(args.user)
        body = json.loads(args.body) if args.body else None
    except (LookupError, ValueError) as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 2
    doc = policy_cli.run(policy_cli.explain(config, person, args.method.upper(), args.path, body))
    print(json.dumps(doc, ensure_ascii=False, indent=2) if args.json else policy_cli.render_explanation(doc))
    return 0


def cmd_policy_who_can(args: argparse.Namespace) -> int:
    """List the roles and realm users that may perform module:verb."""
    from wmsgate import policy_cli

    config = _load_config(args.config)
    filters = {k: v for k, v in (("warehouse", args.warehouse), ("channel", args.channel),
                                 ("order_type", args.order_type)) if v}
    people = policy_cli.Directory(config).everyone()
    doc = policy_cli.run(policy_cli.who_can(config, people, args.module, args.verb, filters))
    print(json.dumps(doc, ensure_ascii=False, indent=2) if args.json else policy_cli.render_who_can(doc))
    return 0


def cmd_policy_replay(args: argparse.Namespace) -> int:
    """``wmsgate policy replay`` (:func:`wmsgate.replay_cli.cmd_policy_replay`)."""
    from wmsgate import replay_cli

    return replay_cli.cmd_policy_replay(args)


def _policy_gate(args: argparse.Namespace, name: str) -> int:
    """``wmsgate policy held|approve`` (:mod:`wmsgate.replay_cli`)."""
    from wmsgate import replay_cli

    return replay_cli.cmd_policy_held(args) if name == "held" else replay_cli.cmd_policy_approve(args)


def cmd_login(args: argparse.Namespace) -> int:
    """Log in through the browser (loopback redirect) and keep the token for `wmsgate access`."""
    from wmsgate import access_cli

    try:
        tokens = access_cli.login(args.issuer.rstrip("/"), args.client_id, args.mfa, not args.no_browser)
    except access_cli.CliError as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 1
    print(f"已登录 / logged in (token valid {tokens['expires_in']} s, stored in {access_cli.token_file()})")
    return 0


def cmd_access(args: argparse.Namespace) -> int:
    """Offboard a person or replace their roles through the gateway's access API."""
    from wmsgate import access_cli

    gateway = access_cli.gateway_url(args.gateway)
    try:
        if args.access_command == "review":
            return review_cli.run(args)
        if args.access_command == "unused":
            return access_cli.unused(gateway, args.days, args.user, args.json)
        if args.access_command == "offboard":
            resp = access_cli.call(gateway, "/_gateway/access/offboard",
                                   {"username": args.username, "reason": args.reason})
        elif args.access_command == "revoke-grant":
            resp = access_cli.call(gateway, "/_gateway/access/revoke-grant",
                                   {"username": args.username, "grant_id": args.grant_id, "reason": args.reason})
        elif args.access_command == "bulk-grant":
            resp = access_cli.call(gateway, "/_gateway/access/bulk-grant",
                                   {"rows": access_cli.read_grant_csv(args.file)})
        else:
            body: dict[str, Any] = {"username": args.username, "roles": args.role}
            scope = {dim: getattr(args, dim) for dim in ("warehouse", "channel", "order_type") if getattr(args, dim)}
            if scope:
                body["scope"] = {dim: scope.get(dim, []) for dim in ("warehouse", "channel", "order_type")}
            resp = access_cli.call(gateway, "/_gateway/access/set-roles", body)
        return access_cli.report(resp, gateway, args.wait, args.timeout)
    except access_cli.CliError as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 1


def cmd_alerts(args: argparse.Namespace) -> int:
    """List, show, acknowledge or resolve security alerts through the gateway."""
    from wmsgate import alerts_cli

    return alerts_cli.main_entry(args)


def cmd_realm(args: argparse.Namespace) -> int:
    """Print the assembled realm JSON (production template, or with the demo overlay), or create
    it in a Keycloak (``--apply URL``; admin from $KEYCLOAK_ADMIN / $KEYCLOAK_ADMIN_PASSWORD),
    waiting up to ``--wait`` seconds for Keycloak to answer (deployments start it alongside)."""
    from keycloak.exceptions import KeycloakError

    from wmsgate.realm import apply_realm, build_realm, keycloak_admin

    if args.gateway_url and not args.gateway_url.startswith(("http://", "https://")):
        print("wmsgate: --gateway-url must be an http(s) URL, e.g. https://wms-gateway.example.com",
              file=sys.stderr)
        return 2
    if args.site:
        from wmsgate.site_realm import SiteRealm, SiteRealmError, build_site_realm

        try:
            rep = build_site_realm(SiteRealm.load(Path(args.site)), args.gateway_url)
        except SiteRealmError as exc:
            print(f"wmsgate: {exc}", file=sys.stderr)
            return 2
    else:
        rep = build_realm(demo=args.demo, gateway_url=args.gateway_url)
    if not args.apply:
        print(json.dumps(rep, ensure_ascii=False, indent=2))
        return 0
    user, password = os.environ.get("KEYCLOAK_ADMIN", ""), os.environ.get("KEYCLOAK_ADMIN_PASSWORD", "")
    if not user or not password:
        print("wmsgate: set KEYCLOAK_ADMIN and KEYCLOAK_ADMIN_PASSWORD to apply the realm", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.wait
    while True:
        try:
            created = apply_realm(keycloak_admin(args.apply.rstrip("/"), user, password), rep, replace=False)
            break
        except (KeycloakError, OSError) as exc:
            if time.monotonic() > deadline:
                print(f"wmsgate: Keycloak at {args.apply} did not take the realm: {exc}", file=sys.stderr)
                return 1
            time.sleep(3)
    print("realm created" if created else "realm exists; left as it is")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``wmsgate``."""
    default_config = str(REPO / "config" / "gateway.yaml")
    parser = argparse.ArgumentParser(prog="wmsgate", description="WMS access gateway / WMS 访问网关")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("proxy", help="run the authorizing proxy (PEP)")
    p.add_argument("--config", default=default_config)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--workers", type=int, default=1,
                   help="processes on this host sharing the port (SO_REUSEPORT) and the store")
    p.add_argument("--worker-index", type=int, default=None,
                   help="this process's index among those sharing the config (keeps its audit spool apart); "
                        "set by --workers, or by hand for proxies on other ports")
    p.add_argument("--management-port", type=int, default=None,
                   help="port of the management listener (/metrics) instead of management.port + the worker "
                        "index; with --workers, worker i listens on this + i")
    p.set_defaults(func=cmd_proxy)

    p = sub.add_parser("demo", help="run Keycloak, OPA, the demo WMS and the proxy until Ctrl-C")
    p.add_argument("--keep", action="store_true", help="keep the realm and WMS data of the last run (KEEP=1)")
    p.set_defaults(func=cmd_demo)

    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", required=True)
    p = audit.add_parser("verify", help="check the hash chain and signed checkpoints (exit 1 on tampering)")
    p.add_argument("--config", default=default_config)
    p.add_argument("--db", default=None, help="SQLAlchemy URL of the audit store (instead of --config)")
    p.add_argument("--public-key", default=None, help="Ed25519 public key (PEM) of the checkpoints")
    p.add_argument("--since", type=parse_time, help="verify from this time (30m, 1h, 2d or ISO)")
    p.add_argument("--archive-dir", default=None, help="also check the archived segment files in this folder")
    p.add_argument("--witness", nargs="?", const="", default=None, metavar="DIR",
                   help="also require every checkpoint the audit witness holds (this folder, or the config's "
                        "audit.witness_dir) to match the trail: catches deleted tail records and rollbacks")
    p.set_defaults(func=cmd_audit_verify)

    p = audit.add_parser("archive", help="archive old records to verified files, remove them behind signed markers")
    p.add_argument("--config", default=default_config)
    p.add_argument("--db", default=None, help="SQLAlchemy URL of the audit store (instead of the config's)")
    p.add_argument("--older-than", type=parse_time, help="cutoff (90d or ISO); default: audit.retention_days")
    p.add_argument("--archive-dir", default=None, help="default: audit.archive_dir")
    p.add_argument("--private-key", default=None, help="checkpoint signing key; default: audit.signing_key_file")
    p.set_defaults(func=cmd_audit_archive)

    def filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", default=default_config)
        p.add_argument("--db", default=None, help="SQLAlchemy URL of the audit store (instead of --config)")
        p.add_argument("--user", help="username or user id")
        p.add_argument("--role", help="one of the person's roles at the time")
        p.add_argument("--since", type=parse_time, help="30m, 1h, 2d or an ISO time (UTC if no offset)")
        p.add_argument("--until", type=parse_time)
        p.add_argument("--module")
        p.add_argument("--verb")
        p.add_argument("--resource", help="resource id")
        p.add_argument("--warehouse")
        p.add_argument("--channel")
        p.add_argument("--decision", choices=("allow", "deny"))
        p.add_argument("--client-ip", dest="client_ip")
        p.add_argument("--device", help="device id (X-Device-Id)")
        p.add_argument("--approval", help="approval id: every step of one four-eyes approval")

    p = audit.add_parser("search", help="search audit records (newest first)")
    filters(p)
    p.add_argument("--limit", type=int, default=100, help="page size")
    p.add_argument("--offset", type=int, default=0, help="skip this many newer records (the next page)")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.set_defaults(func=cmd_audit_search)

    p = audit.add_parser("export", help="export matching records to stdout (CSV with BOM, or JSON lines)")
    filters(p)
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.set_defaults(func=cmd_audit_export)

    p = audit.add_parser("find-export", help="who exported this file? (reads its watermark, names the exporter)")
    p.add_argument("file", type=Path)
    p.add_argument("--config", default=default_config)
    p.add_argument("--db", default=None, help="SQLAlchemy URL of the audit store (instead of the config's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit_find_export)

    p = audit.add_parser("verify-export", help="verify a JSONL export (hashes and the signed chain head)")
    p.add_argument("file")
    p.add_argument("--public-key", required=True, help="Ed25519 public key (PEM) of the checkpoints")
    p.set_defaults(func=cmd_audit_verify_export)

    p = audit.add_parser("anomalies", help="run the built-in anomaly queries")
    p.add_argument("--config", default=default_config)
    p.add_argument("--db", default=None)
    p.add_argument("--since", type=parse_time, help="default 1d")
    p.add_argument("--status-changes", type=int, default=5, help="an order changed this often (in a day)")
    p.add_argument("--deletes", type=int, default=20, help="inventory records one person deleted ...")
    p.add_argument("--delete-window", type=int, default=300, help="... within this many seconds")
    p.add_argument("--denials", type=int, default=20, help="refusals of one person within 10 minutes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit_anomalies)

    shadow = sub.add_parser("shadow", help="report (shadow) mode").add_subparsers(dest="shadow_command",
                                                                                    required=True)
    p = shadow.add_parser("report", help="would-be refusals of routes in report mode, by route, role and reason")
    p.add_argument("--config", default=default_config)
    p.add_argument("--db", default=None, help="SQLAlchemy URL of the audit store (instead of --config)")
    p.add_argument("--since", type=parse_time, help="default 1d (30m, 1h, 2d or ISO)")
    p.add_argument("--until", type=parse_time)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: rollout_cli.cmd_shadow_report(a, _audit_url, parse_time("1d")))

    p = sub.add_parser("init", help="write a deployment folder for fronting your WMS (see docs/onboarding.md)")
    p.add_argument("dir")
    p.add_argument("--wms-url", required=True, help="the WMS's base URL")
    p.add_argument("--realm", default="wms-site", help="the Keycloak realm (client ids derive from it)")
    p.add_argument("--warehouses", default="*", help="warehouse codes, comma separated (HF,SH)")
    p.add_argument("--channels", default="*")
    p.add_argument("--order-types", default="*")
    p.add_argument("--openapi", default=None, help="draft routes.yaml (and policy modules) from this document")
    p.add_argument("--tenant-per-warehouse", action="store_true",
                   help="the WMS has one credential per warehouse and no warehouse field on rows")
    p.add_argument("--port-offset", type=int, default=0, help="added to the default ports (8080, 8180, ...)")
    p.set_defaults(func=init_cli.cmd_init)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("new", help="a new signing key pair (never overwrites)")
    p.add_argument("path", help="the private key file (the public key goes beside it)")
    p.add_argument("--kind", choices=("audit", "policy"), default="audit",
                   help="audit: Ed25519 for audit checkpoints; policy: RSA for policy bundles")
    p.set_defaults(func=init_cli.cmd_keys_new)

    p = sub.add_parser("up", help="run Keycloak, OPA, the bundle service, alerting and the proxy "
                                  "for a deployment folder")
    p.add_argument("--config", required=True, help="the deployment folder (made by wmsgate init)")
    p.add_argument("--keycloak-url", default=None, help="use this running Keycloak instead of starting one")
    p.add_argument("--keycloak-admin", default=None, metavar="USER:PASSWORD",
                   help="its master-realm admin (default: the bootstrap admin of a started Keycloak)")
    p.add_argument("--replace-realm", action="store_true", help="re-create the realm from realm.yaml")
    p.set_defaults(func=cmd_up)

    routes = sub.add_parser("routes", help="the route map").add_subparsers(dest="routes_command", required=True)
    p = routes.add_parser("import-openapi", help="draft a route map from an OpenAPI 3 document (JSON or YAML)")
    p.add_argument("spec", help="the WMS's OpenAPI document (file)")
    p.add_argument("--tenant", default=None, metavar="DIMENSION",
                   help="the WMS has one tenant per warehouse (upstream.tenant): resources lie in the tenant")
    p.add_argument("-o", "--output", default=None, help="write the draft here (default: stdout)")
    p.set_defaults(func=init_cli.cmd_import_openapi)
    p = routes.add_parser("check", help="validate the route map; --from-audit lists traffic it does not cover")
    p.add_argument("--config", default=default_config)
    p.add_argument("--routes", default=None, help="a route map file (default: the config's route_map)")
    p.add_argument("--policy", default=None,
                   help="the deployment's policy folder (default: policy/ beside the config): "
                        "route modules must be in it")
    p.add_argument("--from-audit", type=parse_time, default=None, metavar="SINCE",
                   help="compare with the audit trail since then (1d, 12h or ISO)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: rollout_cli.cmd_routes_check(a, _load_config, parse_time("1d")))

    policy = sub.add_parser("policy", help="ask the policy").add_subparsers(dest="policy_command", required=True)
    p = policy.add_parser("check", help="check a deployment's policy folder with the base layer (opa check, opa test)")
    p.add_argument("--policy", required=True, help="the deployment's policy folder")
    p.set_defaults(func=init_cli.cmd_policy_check)
    p = policy.add_parser("explain", help="why would this request be allowed or denied?")
    p.add_argument("--config", default=default_config)
    p.add_argument("--user", required=True, help="username in the realm")
    p.add_argument("--method", required=True)
    p.add_argument("--path", required=True, help="path and query as the client sends it")
    p.add_argument("--body", help="JSON body, for routes whose attributes come from it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_policy_explain)
    p = policy.add_parser("who-can", help="which roles and people may do module:verb?")
    p.add_argument("--config", default=default_config)
    p.add_argument("--module", required=True)
    p.add_argument("--verb", required=True)
    p.add_argument("--warehouse")
    p.add_argument("--channel")
    p.add_argument("--order-type", dest="order_type")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_policy_who_can)
    p = policy.add_parser("replay", help="re-decide recorded requests under a draft policy: what flips or widens?")
    p.add_argument("--config", default=default_config)
    p.add_argument("--bundle", required=True, help="the draft: a deployment's policy folder or a Wasm bundle")
    p.add_argument("--baseline", help="compare with this folder or bundle instead of the live bundle")
    p.add_argument("--since", type=parse_time, default=parse_time("7d"),
                   help="replay records since (7d by default; 12h, 30m or ISO)")
    p.add_argument("--until", type=parse_time)
    p.add_argument("--user", help="only this person's records (username or id)")
    p.add_argument("--role", help="only records of people who had this role")
    p.add_argument("--module", help="only records of this module")
    p.add_argument("--db", help="SQLAlchemy URL of the audit store (instead of the config's)")
    p.add_argument("--max-changes", type=int, help="exit 1 when more records than this would change")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_policy_replay)
    for name, what in (("held", "the edit the publish gate holds, with its replay report"),
                       ("approve", "let a held edit go live (an admin logged in with --mfa)")):
        p = policy.add_parser(name, help=what)
        if name == "approve":
            p.add_argument("revision", help="the held revision (sha256:...)")
        p.add_argument("--config", default=default_config)
        p.add_argument("--service", help="the bundle service's URL (default: from the config's opa.policy_status_url)")
        p.set_defaults(func=lambda a, n=name: _policy_gate(a, n))

    p = sub.add_parser("login", help="log in through the browser; `wmsgate access` then acts as you")
    p.add_argument("--issuer", default="http://127.0.0.1:8180/realms/wms")
    p.add_argument("--client-id", default="wms-cli")
    p.add_argument("--mfa", action="store_true", help="step up with your one-time code (needed to widen access)")
    p.add_argument("--no-browser", action="store_true", help="only print the URL to open")
    p.set_defaults(func=cmd_login)

    access = sub.add_parser("access", help="change people's access (through the gateway)")
    access_sub = access.add_subparsers(dest="access_command", required=True)
    p = access_sub.add_parser("offboard", help="disable, remove roles and scope, end sessions, revoke tokens")
    p.add_argument("username")
    p.add_argument("--reason", required=True)
    p = access_sub.add_parser("revoke-grant", help="end one temporary grant now "
                                                   "(its id is on the console's person page)")
    p.add_argument("username")
    p.add_argument("grant_id")
    p.add_argument("--reason", required=True)
    p = access_sub.add_parser("set-roles", help="replace a person's roles (and scope); needs a second admin")
    p.add_argument("username")
    p.add_argument("--role", action="append", required=True, help="repeat for several roles")
    p.add_argument("--warehouse", action="append", help="scope values; repeat; * = all")
    p.add_argument("--channel", action="append")
    p.add_argument("--order-type", dest="order_type", action="append")
    p = access_sub.add_parser("bulk-grant", help="temporary grants from a CSV file; needs a second admin")
    p.add_argument("file", type=Path, help="UTF-8 CSV: username,display_name,role,warehouses,channels,order_types,"
                                           "valid_from,valid_until (several values with |, ISO 8601 times)")
    p = access_sub.add_parser("unused", help="roles, permissions, scope values and grants people hold but did not "
                                             "use (from the audit trail)")
    p.add_argument("--days", type=int, default=30, help="the window (1-400 days back from now)")
    p.add_argument("--user", help="only this person")
    p.add_argument("--json", action="store_true")
    for p in access_sub.choices.values():
        p.add_argument("--gateway", help="gateway URL (default $WMSGATE_URL or http://127.0.0.1:8080)")
        p.add_argument("--wait", action="store_true", help="wait for the approval's outcome")
        p.add_argument("--timeout", type=float, default=3600, help="seconds to wait with --wait")
        p.set_defaults(func=cmd_access)
    review_cli.add_parser(access_sub).set_defaults(func=cmd_access)

    alerts = sub.add_parser("alerts", help="security alerts (through the gateway)")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    p = alerts_sub.add_parser("list", help="alerts, most recently seen first")
    p.add_argument("--status", choices=["open", "acknowledged", "resolved"])
    p.add_argument("--rule", help="e.g. multi_device_login, privilege_burst, high_risk_operation")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p = alerts_sub.add_parser("show", help="one alert with its evidence and deliveries")
    p.add_argument("alert_id")
    p = alerts_sub.add_parser("ack", help="acknowledge: someone is on it (repeats are still counted, not re-sent)")
    p.add_argument("alert_id")
    p.add_argument("--note")
    p = alerts_sub.add_parser("resolve", help="resolve: the next occurrence opens a new alert")
    p.add_argument("alert_id")
    p.add_argument("--note")
    for p in alerts_sub.choices.values():
        p.add_argument("--gateway", help="gateway URL (default $WMSGATE_URL or http://127.0.0.1:8080)")
        p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("token", help="print an access token for a demo user")
    p.add_argument("username")
    p.add_argument("--password", default=None)
    p.add_argument("--issuer", default="http://127.0.0.1:8180/realms/wms")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("realm", help="print the realm as code, or create it in a Keycloak")
    p.add_argument("--demo", action="store_true", help="include the demo overlay")
    p.add_argument("--site", default=None, metavar="REALM_YAML",
                   help="a deployment's realm.yaml (its realm, clients, codes, roles, attributes, trial users)")
    p.add_argument("--gateway-url", default=None, help="the gateway's public URL (redirect and logout URLs)")
    p.add_argument("--apply", metavar="KEYCLOAK_URL", default=None,
                   help="create the realm there unless it exists (admin from $KEYCLOAK_ADMIN/_PASSWORD)")
    p.add_argument("--wait", type=float, default=300, help="seconds to wait for Keycloak with --apply")
    p.set_defaults(func=cmd_realm)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wmsgate`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # the reader went away (`wmsgate ... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
