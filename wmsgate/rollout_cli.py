"""``wmsgate shadow report`` and ``wmsgate routes check``: judging a rollout from the audit trail and the route map."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from authorizer.config import ConfigError


def _with_store(url: str, job: Callable[[Any], Any]) -> Any:
    from authorizer.audit import AuditStore

    async def run() -> Any:
        store = AuditStore(url)
        try:
            await store.create_schema()  # a new gateway's empty store answers with nothing, not an error
            return await job(store)
        finally:
            await store.close()

    return asyncio.run(run())


def cmd_shadow_report(args: argparse.Namespace, audit_url: Callable[[argparse.Namespace], str],
                      default_since: Any) -> int:
    """Print the would-be refusals of routes in report mode, grouped by route, role and reason.

    Returns:
        0 (also when there are none), 2 when the config cannot be read.
    """
    from authorizer.audit.shadow import shadow_report

    try:
        url = audit_url(args)
    except ConfigError as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 2
    groups = _with_store(url, lambda store: shadow_report(store, args.since or default_since, args.until))
    if args.json:
        for group in groups:
            print(json.dumps(group.document(), ensure_ascii=False))
        return 0
    print(f"{'count':>6}  {'role':20} {'reason':26} route  (people; example decision id)")
    for g in groups:
        print(f"{g.count:>6}  {g.role:20} {g.reason:26} {g.route}  ({', '.join(g.people[:3])}; {g.example})")
    total = sum(g.count for g in groups) if groups else 0
    print(f"({len(groups)} group(s); 影子模式下将被拒绝的请求 / would-be refusals counted per role: {total})")
    return 0


def _shape(path: str) -> str:
    """A path with id-like segments (digits, or letters with digits) shown as ``{id}``."""
    return "/".join("{id}" if any(c.isdigit() for c in seg) and len(seg) > 0 else seg for seg in path.split("/"))


async def route_coverage(store: Any, route_map: Any, since: Any) -> dict[str, list[dict[str, Any]]]:
    """Audit traffic against the current route map.

    Returns:
        ``{"unmapped": [...], "gone": [...]}``: requests that matched no route (grouped by
        method and path shape, with counts and an example path), and requests that were
        classified by a route the map no longer has (by method and path shape).
    """
    from sqlalchemy import func, select

    from authorizer.audit.store import audit_records
    from proxy.hygiene import HygieneError, check_target

    t = audit_records.c
    stmt = (select(t.method, t.path, t.reason_code, t.module, func.count().label("n"))
            .where(t.ts_ms >= int(since.timestamp() * 1000), t.method != "", t.path.like("/%"),
                   ~t.path.like("/_gateway/%"))
            .group_by(t.method, t.path, t.reason_code, t.module))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    unmapped: dict[str, dict[str, Any]] = {}
    gone: dict[str, dict[str, Any]] = {}
    for row in rows:
        try:
            target = check_target(row.method, row.path)
        except HygieneError:
            continue  # refused before routing: not a route-map question
        matched = route_map.match(row.method, target.segments)
        key = f"{row.method} {_shape(row.path)}"
        if matched is None and row.reason_code == "route_not_mapped":
            entry = unmapped.setdefault(key, {"route": key, "count": 0, "example": row.path})
            entry["count"] += row.n
        elif matched is None and row.module:
            entry = gone.setdefault(key, {"route": key, "count": 0, "example": row.path, "module": row.module})
            entry["count"] += row.n
    order = lambda items: sorted(items, key=lambda e: (-e["count"], e["route"]))  # noqa: E731
    return {"unmapped": order(unmapped.values()), "gone": order(gone.values())}


def cmd_routes_check(args: argparse.Namespace, load_config: Callable[[str], Any], default_since: Any) -> int:
    """Validate the route map; with ``--from-audit``, list traffic it does not cover.

    Returns:
        0 when the map is valid, nothing is left undecided (``TODO(wmsgate)``), every module
        is in a policy layer (when the deployment's policy folder is found) and, with
        ``--from-audit``, every recorded request still matches a route; 1 when something is
        to decide or fix, 2 when the map or config is invalid.
    """
    from authorizer.authz.routes import RouteMap, RouteMapError
    from wmsgate.policy_lint import defined_modules, route_problems
    from wmsgate.tools import REPO

    try:
        config = load_config(args.config)  # the caller's loader: no secrets needed
        path = Path(args.routes) if args.routes else config.route_map
        route_map = RouteMap.load(path)
    except (ConfigError, RouteMapError) as exc:
        print(f"wmsgate: {exc}", file=sys.stderr)
        return 2
    policy = Path(args.policy) if args.policy else Path(args.config).parent / "policy"
    modules = defined_modules(REPO / "rego" / "base", policy) if (policy / "wms").is_dir() else None
    problems = route_problems(path, route_map, modules)
    for problem in problems:
        print(f"  {problem}")
    print(f"{path}: {len(route_map.routes)} route(s), valid / 路由表有效"
          + (f"; {len(problems)} to decide or fix / {len(problems)} 处待处理" if problems else "")
          + ("" if modules is not None else f" (modules not checked: no policy folder {policy})"))
    if args.from_audit is None:
        return 1 if problems else 0
    found = _with_store(config.audit.url, lambda store: route_coverage(store, route_map, args.from_audit))
    if args.json:
        print(json.dumps(found, ensure_ascii=False))
    else:
        print(f"未登记的请求 / traffic that matched no route ({len(found['unmapped'])}):")
        for e in found["unmapped"]:
            print(f"  {e['count']:>6}  {e['route']}   e.g. {e['example']}")
        print(f"路由表已删除的路由 / requests of routes the map no longer has ({len(found['gone'])}):")
        for e in found["gone"]:
            print(f"  {e['count']:>6}  {e['route']}   (module {e['module']}) e.g. {e['example']}")
    return 1 if found["unmapped"] or found["gone"] or problems else 0
