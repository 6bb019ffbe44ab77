"""Several processes append to one audit store at once (several proxies): the chain stays whole."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from authorizer.audit import AuditStore
from wmsgate.tools import REPO

WORKER = """
import asyncio, sys, time
from authorizer.audit import AuditRecord, AuditStore

async def main(url: str, tag: str) -> None:
    store = AuditStore(url)
    for b in range(60):
        await store.insert_many([AuditRecord(decision_id=f"{tag}-{b}-{k}", ts_ms=int(time.time() * 1000),
                                             decision="allow", reason_code="allowed", http_status=200,
                                             method="GET", path="/api/orders") for k in range(5)])
    await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_concurrent_appends_from_several_processes_keep_one_valid_chain(store_url: str) -> None:
    async def prepare() -> None:
        store = AuditStore(store_url)
        await store.create_schema()
        await store.close()

    async def check() -> tuple[int, bool, list[str]]:
        store = AuditStore(store_url)
        result = await store.verify(None)  # no checkpoints: only the chain is checked
        await store.close()
        return result.records, result.ok, [f"{p.kind}@{p.seq}" for p in result.problems[:5]]

    asyncio.run(prepare())
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, store_url, tag], cwd=REPO) for tag in "abc"]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0]
    records, ok, problems = asyncio.run(check())
    assert records == 3 * 60 * 5
    assert ok, problems
