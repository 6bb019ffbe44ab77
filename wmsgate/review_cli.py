"""``wmsgate access review ...``: access review campaigns through the gateway's API, and the
offline check of an exported result (its Ed25519 signature, the audit trail's key)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from wmsgate.access_cli import CliError, current_token, gateway_url

BASE = "/_gateway/access/reviews"


def _call(gateway: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One API call as the current admin.

    Raises:
        CliError: refused (the gateway's bilingual reason) or not JSON.
    """
    resp = httpx.request(method, f"{gateway}{path}", json=body, timeout=120,
                         headers={"Authorization": f"Bearer {current_token()}"})
    try:
        doc: dict[str, Any] = resp.json()
    except ValueError:
        raise CliError(f"{resp.status_code}: {resp.text[:300]}") from None
    if resp.status_code != 200:
        raise CliError(f"拒绝 / refused ({resp.status_code} {doc.get('error')}): {doc.get('reason_zh')} / "
                       f"{doc.get('reason_en')}")
    return doc


def _when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000)) + "Z"


def _show(doc: dict[str, Any]) -> None:
    target = f"warehouse {doc['warehouse']}" if doc.get("warehouse") else f"role {doc['role']}"
    print(f"{doc['review_id']}  {doc['title']}  ({target}, {doc['status']}, deadline {_when(doc['deadline_ms'])}, "
          f"unreviewed: {doc['unreviewed']})")
    for item in doc.get("items", []):
        decided = f"{item['decision']} by {item['decided_by']}" if item["decision"] else "undecided"
        print(f"  {item['item_id']:>4}  {item['username']:<20} {item['kind']:<6} {item['name']:<28} "
              f"last used {_when(item['last_used_ms']):<17}  {decided}"
              + (f"  -> {item['outcome']}" if item.get("outcome") else ""))


def run(args: argparse.Namespace) -> int:
    """Dispatch ``wmsgate access review <command>``; 0 on success, 1 when refused or invalid."""
    try:
        if args.review_command == "verify":
            return verify(Path(args.file), Path(args.public_key))
        gateway = gateway_url(args.gateway)
        if args.review_command == "start":
            body: dict[str, Any] = {"title": args.title, "days": args.days, "deadline_hours": args.deadline_hours}
            body.update({"warehouse": args.warehouse} if args.warehouse else {"role": args.role})
            if args.unreviewed:
                body["unreviewed"] = args.unreviewed
            doc = _call(gateway, "POST", BASE, body)
            print(f"已创建 / started {doc['review_id']} ({doc['items']} items)")
        elif args.review_command == "list":
            for review in _call(gateway, "GET", BASE)["reviews"]:
                _show(review)
        elif args.review_command == "show":
            _show(_call(gateway, "GET", f"{BASE}/{args.review_id}"))
        elif args.review_command in ("keep", "revoke"):
            for item in args.item:
                _call(gateway, "POST", f"{BASE}/{args.review_id}/items/{item}",
                      {"decision": args.review_command, **({"note": args.note} if args.note else {})})
            print(f"{args.review_command}: {', '.join(map(str, args.item))}")
        elif args.review_command == "close":
            doc = _call(gateway, "POST", f"{BASE}/{args.review_id}/close")
            print(f"已结束 / closed: {doc['result']['revoked']} item(s) revoked")
        else:
            doc = _call(gateway, "GET", f"{BASE}/{args.review_id}/result")
            doc.pop("decision_id", None)
            text = json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True)
            if args.output:
                Path(args.output).write_text(text + "\n", encoding="utf-8")
            else:
                print(text)
        return 0
    except CliError as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 1


def verify(file: Path, public_key_file: Path) -> int:
    """Check an exported result's signature with the audit trail's public key; 0 when genuine."""
    from authorizer.audit.chain import load_public_key
    from authorizer.iam.review_service import result_signature_valid

    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"wmsgate: {file}: {exc}", file=sys.stderr)
        return 1
    if not isinstance(document, dict) or not result_signature_valid(load_public_key(public_key_file), document):
        print(f"FAILED: {file} is not a genuine access review result (altered, or signed with another key)")
        return 1
    result = document["result"]
    print(f"OK: access review {result['review_id']} {result['title']!r}, closed {_when(result['closed_ms'])} by "
          f"{result['closed_by']}: {len(result['items'])} items, {result['revoked']} revoked")
    return 0


def add_parser(access_sub: Any) -> argparse.ArgumentParser:
    """Register ``review`` on the ``access`` subcommands; returns its parser."""
    review = access_sub.add_parser("review", help="access review campaigns: start, decide, close, export, verify")
    sub = review.add_subparsers(dest="review_command", required=True)
    p = sub.add_parser("start", help="start a campaign over a warehouse's people or a role's holders")
    p.add_argument("--title", required=True)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--warehouse")
    target.add_argument("--role")
    p.add_argument("--days", type=int, default=90, help="how far back 'last used' looks")
    p.add_argument("--deadline-hours", type=float, default=24 * 14, dest="deadline_hours")
    p.add_argument("--unreviewed", choices=("revoke", "keep"), help="at the deadline (default: the config's)")
    sub.add_parser("list", help="campaigns, newest first")
    for name, what in (("show", "a campaign's items"), ("close", "close now: revoke and sign the result")):
        p = sub.add_parser(name, help=what)
        p.add_argument("review_id")
    for name in ("keep", "revoke"):
        p = sub.add_parser(name, help=f"decide {name} on items")
        p.add_argument("review_id")
        p.add_argument("item", type=int, nargs="+")
        p.add_argument("--note")
    p = sub.add_parser("export", help="the signed result of a closed campaign (JSON)")
    p.add_argument("review_id")
    p.add_argument("--output", "-o")
    p = sub.add_parser("verify", help="check an exported result's signature (offline)")
    p.add_argument("file")
    p.add_argument("--public-key", required=True, help="the audit signing key's public key (PEM)")
    for p in sub.choices.values():
        p.add_argument("--gateway", help="gateway URL (default $WMSGATE_URL or http://127.0.0.1:8080)")
    parser: argparse.ArgumentParser = review
    return parser
