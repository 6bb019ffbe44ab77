"""The audit database goes away while requests flow (issue "Audit trail", case 3).

On PostgreSQL the server is stopped (``pg_ctl -m immediate``, like a crash) and started
again; on SQLite another process holds an exclusive lock so every write times out.
Records wait in the proxy's spool and are replayed in order when the database returns:
every request has exactly one record, in request order, and the chain verifies.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.support.stack import Stack
from wmsgate.tools import REPO

OUTAGE_SECONDS = 8.0


@contextmanager
def database_outage(stack: Stack) -> Iterator[None]:
    """Make the audit database unavailable for the duration of the block."""
    if stack.audit.pg is not None:
        stack.audit.pg.stop("immediate")
        try:
            yield
        finally:
            stack.audit.pg.start()
        return
    conn = sqlite3.connect(stack.stack.audit_db, isolation_level=None, timeout=30)
    conn.execute("BEGIN EXCLUSIVE")  # every other writer now times out
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


class Traffic(threading.Thread):
    """One client sending requests back to back, remembering each decision id in order."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.client = stack.client("picker.hf")
        self.decision_ids: list[str] = []
        self.statuses: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                resp = self.client.get("/api/picking/tasks", params={"page_size": 1})
            except httpx.HTTPError:
                continue  # no answer, no decision id: nothing to account for
            self.decision_ids.append(resp.headers["X-Decision-Id"])
            self.statuses.append(resp.status_code)
            time.sleep(0.02)


def test_case_3_every_request_keeps_exactly_one_record_in_order_through_a_database_outage(stack: Stack) -> None:
    stack.tokens.get("picker.hf")
    traffic = Traffic(stack)
    traffic.start()
    spooled_seen = 0
    try:
        time.sleep(1.0)
        with database_outage(stack):
            deadline = time.monotonic() + OUTAGE_SECONDS
            with httpx.Client(base_url=stack.proxy, timeout=10) as probe:
                while time.monotonic() < deadline:
                    health = probe.get("/_gateway/health").json()
                    spooled_seen = max(spooled_seen, health["checks"]["audit"]["spooled"])
                    time.sleep(0.5)
        time.sleep(1.0)
    finally:
        traffic.stop.set()
        traffic.join(timeout=30)
        traffic.client.close()
    ids = traffic.decision_ids
    assert len(ids) > 50, "the traffic thread barely ran"
    assert spooled_seen > 0, "records never went to the spool during the outage"
    stack.audit_record(ids[-1], timeout=60)  # the spool is replayed, then the rest
    rows = _records(stack, ids)
    assert [r["decision_id"] for r in rows] == ids  # each once, in request order
    copy = stack.audit.snapshot()
    public_key = stack.stack.settings.state / "audit-signing-key.pub"
    out = subprocess.run([sys.executable, "-m", "wmsgate.cli", "audit", "verify", "--db", copy,
                          "--public-key", str(public_key)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    with httpx.Client(base_url=stack.proxy, timeout=10) as probe:
        audit = probe.get("/_gateway/health").json()["checks"]["audit"]
    assert audit["ok"] and audit["spooled"] == 0


def _records(stack: Stack, ids: list[str]) -> list[dict[str, object]]:
    first = stack.audit.sql("SELECT seq FROM audit_records WHERE decision_id = :d", {"d": ids[0]})[0]["seq"]
    wanted = set(ids)
    rows = stack.audit.sql("SELECT seq, decision_id FROM audit_records WHERE seq >= :s ORDER BY seq", {"s": first})
    return [r for r in rows if r["decision_id"] in wanted]
