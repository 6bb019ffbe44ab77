"""``wmsgate shadow report`` and ``wmsgate routes check``: judging a rollout from the audit trail."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, Callable

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
